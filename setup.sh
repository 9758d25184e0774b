#!/usr/bin/env bash
# Quick start, step 1: install everything into ./.venv, then watch the agent drive the simulated robot
# from room R0 through a doorway to its goal in room R1 (prints progress; saves runs/agent_topdown.png).
set -euo pipefail
cd "$(dirname "$0")"
time bash scripts/install.sh
source scripts/env.sh
exec ojepa agent --task demo --until-reached --duration 180 "$@"
