#!/usr/bin/env bash
# The README's dashboard screenshots (docs/overview.png, latency.png, ticket.png), from
# a real run: a day of generated host history with its faults
# (`anomalyd eval generate --faults`), shifted to end now and cut ten minutes into its
# last fault (every ping to `gw` lost) so that ticket is still open, its label column
# dropped (the model would learn it as a feature), replayed into a state directory;
# then `anomalyd run` on that state with two loopback ping targets for SECONDS, and
# headless Chromium (tests/browser/cdp.py) reads the pages.
#
#   bash docs/screenshots.sh [SECONDS]      (default 180; ping needs root or CAP_NET_RAW)
#   ANOMALYD=target/ci/anomalyd bash docs/screenshots.sh   (a build already made)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-180}
bin=${ANOMALYD:-target/release/anomalyd}
[ -x "$bin" ] || cargo build --release
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

"$bin" eval generate --days 1 --faults --out "$tmp/day.csv" >/dev/null
python3 - "$tmp/day.csv" "$tmp/cut.csv" <<'PY'
import calendar, sys, time
src, dst = sys.argv[1:]
# The last column is the fault label (header `label`): the answer, not a measurement;
# replayed, the model would learn it as a feature. Cut it from every line.
lines = [l.rsplit(",", 1)[0] for l in open(src).read().splitlines()]
assert open(src).readline().rstrip("\n").endswith(",label"), "no label column last"
rows = lines[1:1 + 1296 + 10]          # the last fault starts at row 1296 of 1440
secs = lambda l: calendar.timegm(time.strptime(l.split(",")[0], "%Y-%m-%d %H:%M:%S"))
shift = int(time.time()) - 60 - secs(rows[-1])
with open(dst, "w") as f:
    f.write(lines[0] + "\n")
    for l in rows:
        f.write(f"{secs(l) + shift},{l.split(',', 1)[1]}\n")
PY
"$bin" replay --input "$tmp/cut.csv" --state-dir "$tmp/state" >"$tmp/replay.log" 2>&1 ||
  { cat "$tmp/replay.log"; exit 1; }
printf 'interval: 1s\nhttp:\n  dashboard_loopback_writes: true\n' >"$tmp/anomalyd.yaml"
"$bin" run --config "$tmp/anomalyd.yaml" --state-dir "$tmp/state" --listen 127.0.0.1:0 \
  --ping-target 127.0.0.1 --ping-target ::1 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do
  addr=$(grep -o 'listening on http://[^/]*' "$tmp/log" | sed 's,.*//,,' || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
echo "anomalyd on $addr; taking screenshots in $secs s"
sleep "$secs"
python3 tests/browser/cdp.py - >/dev/null <<JSON
{"base": "http://$addr", "shots": "docs", "steps": [
  {"open": "/?since=24h", "shot": "overview.png"},
  {"open": "/latency?since=1h", "shot": "latency.png"},
  {"open": "/tickets/INC-7", "shot": "ticket.png"}
]}
JSON
ls -l docs/*.png
