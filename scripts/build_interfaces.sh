#!/usr/bin/env bash
# Build each interface package in interfaces/ (ojepa_interfaces: the NavigateToPose action) into ./.venv with
# the rosidl generators of the ros-* wheels and the system's cmake and C/C++ compiler, as colcon would on a
# distro. Idempotent: a package whose files are unchanged since its last build, and which imports, is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv=$root/.venv
export PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv"
for src in "$root"/interfaces/*/; do
  name=$(basename "$src")
  stamp=$venv/share/$name/.ojepa-built
  want=$(cd "$src" && find . -type f | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c "import $name" 2>/dev/null; then
    continue
  fi
  echo "building $name into $venv"
  build=$venv/build/$name
  rm -rf "$build" && mkdir -p "$build"
  cmake -S "$src" -B "$build" -DCMAKE_INSTALL_PREFIX="$venv" -DCMAKE_PREFIX_PATH="$venv" -DBUILD_TESTING=OFF \
    -DPython3_EXECUTABLE="$venv/bin/python" >"$build/configure.log" 2>&1 \
    || { tail -20 "$build/configure.log" >&2; exit 1; }
  cmake --build "$build" -j "$(nproc)" >"$build/build.log" 2>&1 || { tail -20 "$build/build.log" >&2; exit 1; }
  cmake --install "$build" >"$build/install.log" 2>&1 || { tail -20 "$build/install.log" >&2; exit 1; }
  echo "$want" > "$stamp"
done
