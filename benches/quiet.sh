#!/usr/bin/env bash
# A live daemon at 1 s sampling on this (quiet) machine: warm-up, first model, then
# MINUTES more minutes (default 30) with probation off, and count the tickets it opened
# after training. The issue #11 target: 0. Usage:
#   cargo build --release && bash benches/quiet.sh [BINARY] [MINUTES] [WARMUP]
set -euo pipefail
bin=${1:-target/release/anomalyd}
minutes=${2:-30}
warmup=${3:-1h}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
cat > "$dir/config.yaml" <<YAML
interval: 1s
listen: 127.0.0.1:0
state_dir: $dir/state
collectors:
  ping:
    targets: [127.0.0.1]
model:
  warmup: $warmup
  probation: 0s
YAML
"$bin" run --config "$dir/config.yaml" 2> "$dir/log" &
pid=$!
echo "daemon $pid, state in $dir; waiting for the first model (warm-up $warmup)"
until grep -q "model trained" "$dir/log"; do
  kill -0 "$pid" || { cat "$dir/log"; exit 1; }
  sleep 10
done
trained=$(date -u +%s)
echo "trained at $(date -u -d @"$trained"); watching for $minutes min"
sleep $((minutes * 60))
"$bin" tickets list --state-dir "$dir/state" --json > "$dir/tickets.json"
python3 - "$dir/tickets.json" "$trained" <<'PY'
import json, sys
tickets = json.load(open(sys.argv[1]))
after = [t for t in tickets if t["opened_ms"] >= int(sys.argv[2]) * 1000]
print(f"tickets opened after the first model: {len(after)} (all: {len(tickets)})")
for t in after:
    print(" ", t["id"], t["severity"], t["title"])
PY
