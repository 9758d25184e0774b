#!/bin/bash
# Two namespaced agents on one ROS domain, each driving its own embedded robot to the demo goal, N times:
# the issue's "two namespaced agents reach their goals, 10/10". Figures, not a test: prints one line per run.
#   bash bench/two_agents.sh [N=10]
set -u
cd "$(dirname "$0")/.." && source scripts/env.sh
export ROS_DOMAIN_ID=$((RANDOM % 100 + 101)) ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
out=$(mktemp -d)
for i in $(seq 1 "${1:-10}"); do
  for ns in robot1 robot2; do
    ROS_HOME="$out/$ns" timeout 120 ojepa agent --namespace "$ns" --task demo --until-reached > "$out/$i.$ns.log" 2>&1 &
  done
  wait
  echo "run $i: $(for ns in robot1 robot2; do echo -n "$ns $(grep -o 'reached: [A-Za-z]* in [0-9.]* s' "$out/$i.$ns.log" || echo 'no result') | "; done)"
done
echo "logs: $out"
