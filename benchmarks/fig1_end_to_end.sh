#!/usr/bin/env bash
# Figure 1 at the paper's settings, end to end from an empty cache, on this machine's cores:
# the restart ids split into one shard per core (run side by side), then the assembling run
# (extra restarts for settings where some did not stop, the hard-treatment BP curves, the plots).
# Prints the wall time of each part and the total.
#
# Run: bash benchmarks/fig1_end_to_end.sh [OUT] [SHARDS]   (default out/fig1-e2e, one per CPU)
# A run's printed timings, kept: benchmarks/results/fig1_end_to_end_<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/fig1-e2e}
N=${2:-$(nproc)}
LE=${LOCALENTROPY:-.venv/bin/localentropy}
mkdir -p "$OUT"
t0=$(date +%s)
echo "start $(date -u +%FT%TZ), $N shards, load $(cut -d' ' -f1 /proc/loadavg), $(nproc) CPUs"
pids=()
for i in $(seq 1 "$N"); do
  "$LE" figure 1 --shard "$i/$N" --jobs 1 --cache "$OUT/cache" --out "$OUT" >"$OUT/shard$i.log" 2>&1 &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"
  echo "shard $((i + 1))/$N done at $(( $(date +%s) - t0 )) s"
done
t1=$(date +%s)
"$LE" figure 1 --cache "$OUT/cache" --out "$OUT" >"$OUT/assemble.log" 2>&1
t2=$(date +%s)
echo "shards $(( t1 - t0 )) s, assembly $(( t2 - t1 )) s, total $(( t2 - t0 )) s ($(date -u +%FT%TZ))"
