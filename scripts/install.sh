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

stamp=.venv/.ojepa-installed
want=$(cat requirements.txt setup.py package.xml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
# An editable install skips data_files: register the package in the venv's ament prefix by hand,
# with links to the checkout's folders (what `colcon build --symlink-install` does).
share=.venv/share/ojepa_ros
mkdir -p "$share" .venv/share/ament_index/resource_index/packages
for item in package.xml config launch models rviz; do ln -sfn "$(pwd)/$item" "$share/$item"; done
touch .venv/share/ament_index/resource_index/packages/ojepa_ros
echo "$want" > "$stamp"
echo "ojepa_ros installed in $(pwd)/.venv"
