#!/usr/bin/env bash
# anomalyd vs node_exporter, side by side in one run on this machine.
#
#   bash benches/overhead.sh [SECONDS]      (default 60)
#   ANOMALYD=target/ci/anomalyd bash benches/overhead.sh 600   (a build already made)
#
# Starts anomalyd (release build, 1 s sampling, 3 ping targets on loopback, a model
# trained on its first 90 s) and
# Debian's prometheus-node-exporter (default collectors), scrapes both once a second
# for the window while ../shared/tools/overhead.sh measures CPU and RSS of each
# process tree, then measures /metrics latency (200 sequential scrapes each, with
# ../shared/tools/scrape_latency.sh) and prints both and the ratios, with the bytes
# each wrote to disk over the window (/proc/PID/io write_bytes: what reached the block
# layer, WAL and checkpoints included; reading another user's needs root).
# Targets (issue #2): anomalyd <= 0.3 % of one core, <= 12 MB RSS, p99 <= 1 ms;
# (issue #15) disk writes <= 40 KB a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
tools=${TOOLS:-../shared/tools}
[ -x "$tools/overhead.sh" ] || tools=$(cd "$(dirname "$0")/../../shared/tools" && pwd)
command -v prometheus-node-exporter >/dev/null || { echo "needs prometheus-node-exporter (apt-get install prometheus-node-exporter)" >&2; exit 1; }

# ANOMALYD=path/to/binary measures that build instead of building the release one.
bin=${ANOMALYD:-}
if [ -z "$bin" ]; then cargo build --release --quiet; bin=./target/release/anomalyd; fi
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pa=$(port); pn=$(port)
# A model trained before the window (a 90 s warm-up instead of the default hour), so
# the window measures the daemon as it runs for good: scoring every sample.
printf 'model:\n  warmup: 90s\n' > "$work/anomalyd.yaml"
"$bin" run --config "$work/anomalyd.yaml" --listen "127.0.0.1:$pa" --interval 1s --state-dir "$work/state" \
  --ping-target 127.0.0.1 --ping-target 127.0.0.2 --ping-target ::1 2>"$work/anomalyd.log" &
apid=$!; pids+=("$apid")
prometheus-node-exporter --web.listen-address="127.0.0.1:$pn" 2>"$work/node.log" &
npid=$!; pids+=("$npid")
for u in "http://127.0.0.1:$pa/metrics" "http://127.0.0.1:$pn/metrics"; do
  for _ in $(seq 50); do curl -sf -o /dev/null "$u" && break; sleep 0.2; done
done
for _ in $(seq 300); do grep -q "model trained" "$work/anomalyd.log" && break; sleep 1; done
grep -q "model trained" "$work/anomalyd.log" || { echo "anomalyd trained no model in 300 s:" >&2; tail "$work/anomalyd.log" >&2; exit 1; }
sleep 5   # let both reach steady state (first ping rounds, page cache)

# Scrape both once a second during the measured window, as Prometheus would.
( end=$((SECONDS + secs)); while [ $SECONDS -lt $end ]; do
    curl -sf -o /dev/null --compressed "http://127.0.0.1:$pa/metrics" &
    curl -sf -o /dev/null --compressed "http://127.0.0.1:$pn/metrics" &
    sleep 1; done; wait ) &
spid=$!; pids+=("$spid")
written() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$1/io"; }
wa0=$(written "$apid"); wn0=$(written "$npid")
bash "$tools/overhead.sh" -d "$secs" -p "$apid" > "$work/a.over" &
o1=$!
bash "$tools/overhead.sh" -d "$secs" -p "$npid" > "$work/n.over" &
o2=$!
wait $o1 $o2 $spid
wa1=$(written "$apid"); wn1=$(written "$npid")
kb_min() { awk -v b="$1" -v s="$secs" 'BEGIN { printf "%.1f", b / 1000 / (s / 60) }'; }
echo "disk_kb_per_min=$(kb_min $((wa1 - wa0)))" >> "$work/a.over"
echo "disk_kb_per_min=$(kb_min $((wn1 - wn0)))" >> "$work/n.over"

bash "$tools/scrape_latency.sh" "http://127.0.0.1:$pa/metrics" 200 --compressed > "$work/a.lat"
bash "$tools/scrape_latency.sh" "http://127.0.0.1:$pn/metrics" 200 --compressed > "$work/n.lat"

get() { awk -F= -v k="$2" '$1 == k { print $2 }' "$1"; }
printf '\n%-22s %12s %16s %10s\n' "" anomalyd node_exporter ratio
row() {
  local a n
  a=$(get "$work/a.$1" "$2"); n=$(get "$work/n.$1" "$2")
  printf '%-22s %12s %16s %10s\n' "$3" "$a" "$n" "$(awk -v a="$a" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", a / n; else print "-" }')"
}
row over cpu_pct_1core "cpu % of one core"
row over rss_final_mb "rss after scrapes MB"
row over rss_max_mb "rss max MB"
row over disk_kb_per_min "disk writes KB/min"
row lat p50_ms "/metrics p50 ms"
row lat p99_ms "/metrics p99 ms"
row lat bytes "/metrics bytes"
row lat samples "/metrics samples"
echo
echo "window ${secs}s, anomalyd: 1 s sampling, a trained model, 3 ping targets (127.0.0.1, 127.0.0.2, ::1); node_exporter: Debian defaults"
echo "anomalyd state dir after the run: $(du -sk "$work/state" | cut -f1) KB ($(du -sk "$work/state/history.db"* | awk '{ s += $1 } END { print s }') KB history.db*)"
echo "targets: anomalyd cpu <= 0.3 %, rss <= 12 MB, p99 <= 1 ms, disk writes <= 40 KB/min"
