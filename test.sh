#!/usr/bin/env bash
# Quick start, step 2: run the test suite (installs into ./.venv first if needed). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
source scripts/env.sh
exec python -m pytest -q "$@"
