#!/usr/bin/env bash
# Install ojepa_ros and its pinned dependencies into ./.venv (idempotent: skips work already done).
# On a bare Debian machine it also installs, through apt when run as root, the two system pieces
# Python's venv and MuJoCo's offscreen renderer need.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PY" -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12)), sys.version' \
  || { echo "ojepa_ros needs Python 3.11 (or 3.12); found $("$PY" --version)" >&2; exit 1; }

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: $*"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "please install the Debian packages: $* (sudo apt-get install $*)" >&2; exit 1
  fi
}
"$PY" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1 ' || apt_install libegl1 libegl-mesa0 libgl1-mesa-dri
command -v cmake >/dev/null && command -v g++ >/dev/null && command -v make >/dev/null || apt_install cmake g++ make

# Register the package in the venv's ament prefix as `colcon build --symlink-install` would: real
# directories holding one link per file (ros2launch and ros2pkg walk share/ and lib/ with os.walk, which
# does not follow directory links), and the node executables under lib/ojepa_ros/. Cheap, so it runs on
# every call and picks up new launch, config, model and rviz files.
register() {
  local share=.venv/share/ojepa_ros libexec=.venv/lib/ojepa_ros
  rm -rf "$share" "$libexec"
  mkdir -p "$share" "$libexec" .venv/share/ament_index/resource_index/packages
  ln -s "$(pwd)/package.xml" "$share/package.xml"
  local file
  while IFS= read -r file; do
    mkdir -p "$share/$(dirname "$file")"
    ln -s "$(pwd)/$file" "$share/$file"
  done < <(find config launch models rviz -type f ! -name '*.state.pt' ! -path '*/__pycache__/*' | sort)
  # The executables are the package's console scripts (setup.py), the `ojepa` CLI excepted.
  local node
  for node in $(.venv/bin/python -c 'from importlib.metadata import distribution as d
print(*sorted(e.name for e in d("ojepa_ros").entry_points if e.group == "console_scripts" and e.name != "ojepa"))'); do
    ln -s "../../bin/$node" "$libexec/$node"
  done
  touch .venv/share/ament_index/resource_index/packages/ojepa_ros
}

stamp=.venv/.ojepa-installed
want=$(cat requirements.txt setup.py package.xml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  bash scripts/build_interfaces.sh
  register
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
bash scripts/build_interfaces.sh  # interfaces/ (the NavigateToPose action), built with the wheels' generators
# An editable install skips data_files and puts console scripts in bin/ only: register() lays them out.
register
echo "$want" > "$stamp"
echo "ojepa_ros installed in $(pwd)/.venv"
