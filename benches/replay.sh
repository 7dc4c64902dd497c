#!/usr/bin/env bash
# Replay speed: SMD machine-1-2 streamed as its train half then its test half (47,388
# one-minute rows x 38 columns), warm-up = the train half, daily retraining, tickets,
# through `anomalyd replay`. Prints wall and CPU time, peak RSS and rows a second.
#
#   bash benches/replay.sh [SMD_DIR] [MACHINE]   (default ../shared/datasets/smd machine-1-2)
#   ANOMALYD=target/ci/anomalyd bash benches/replay.sh    (a build already made)
#   PERF=1 ...   also records a profile (perf record --call-graph dwarf) and prints
#                the functions that hold most of the samples, children included.
set -euo pipefail
cd "$(dirname "$0")/.."
smd=${1:-../shared/datasets/smd}; m=${2:-machine-1-2}
bin=${ANOMALYD:-}
if [ -z "$bin" ]; then cargo build --release --quiet; bin=./target/release/anomalyd; fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

python3 - "$smd" "$m" "$work" <<'PY'
import datetime, gzip, sys
d, m, work = sys.argv[1:]
def load(p):
    with (gzip.open(p, "rt") if p.endswith(".gz") else open(p)) as f:
        return [l.strip() for l in f if l.strip()]
tr, te = load(f"{d}/train/{m}.txt.gz"), load(f"{d}/test/{m}.txt.gz")
t0 = datetime.datetime(2026, 1, 1)
with open(f"{work}/series.csv", "w") as f:
    f.write("timestamp," + ",".join(f"m{j}" for j in range(len(tr[0].split(",")))) + "\n")
    for i, row in enumerate(tr + te):
        f.write((t0 + datetime.timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S") + "," + row + "\n")
with open(f"{work}/replay.yaml", "w") as f:
    f.write(f"interval: 1m\nmodel:\n  warmup: {len(tr) - 1}m\n  retrain_interval: 1d\n")
PY
rows=$(($(wc -l < "$work/series.csv") - 1))
run=("$bin" replay --input "$work/series.csv" --config "$work/replay.yaml" --state-dir "$work/st")
/usr/bin/time -f "%e %U %S %M" -o "$work/time" "${run[@]}" >/dev/null 2>"$work/log"
read -r wall user sys rss < "$work/time"
awk -v r="$rows" -v w="$wall" -v u="$user" -v s="$sys" -v k="$rss" 'BEGIN {
  printf "%d rows: %.2f s wall, %.2f s CPU (user %.2f + sys %.2f), peak RSS %.0f MB: %.0f rows/s\n",
    r, w, u + s, u, s, k / 1024, r / w }'
if [ -n "${PERF:-}" ]; then
  rm -rf "$work/st"
  perf record -q -F 199 --call-graph dwarf,16384 -o "$work/perf.data" "${run[@]}" >/dev/null 2>&1
  perf report -i "$work/perf.data" --children --sort symbol --stdio -g none 2>/dev/null \
    | grep -E '^ +[0-9]' | grep -E 'anomalyd::' | head -25
fi
