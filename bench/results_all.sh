#!/usr/bin/env bash
# results_all.sh - every figure the issues ask for, on this machine, in one run, into bench/results/:
#   fbench hw (the ceilings), J1..J4, A1..A4, S1..S4 and scan-agg next to DuckDB on the same data
#   (bench/peers/compare.py), the plan cost model's calibration, and the 13 SSB queries next to DuckDB and to
#   the model's predictions (fbench plan ssb --peer duckdb --predict).
# Usage: bench/results_all.sh [BUILD_DIR] [TAG] [SCALE] [THREADS]
#   defaults: build/release, a tag from the CPU model and core count, scale 1, all cores.
# Takes about 15 minutes at scale 1 on a 2-core machine and needs ~8 GiB of memory.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/release}
CORES=$(nproc)
TAG=${2:-$(grep -m1 "model name" /proc/cpuinfo | sed 's/.*: //; s/[^A-Za-z0-9]\+/-/g; s/-$//' | tr A-Z a-z)-${CORES}core}
SCALE=${3:-1}
THREADS=${4:-$CORES}
R=bench/results
mkdir -p "$R"
echo "results_all: build $B, tag $TAG, scale $SCALE, $THREADS threads" >&2
"$B/fbench" hw --json "$R/hw-$TAG.json" > "$R/hw-$TAG.txt"
OUT="$R/peers-$TAG.json"
rm -f "$OUT"
for w in J1 J2 J3 J4 A1 A2 A3 A4 S1 S2 S3 S4 scan-agg; do
  python3 bench/peers/compare.py "$w" --fbench "$B/fbench" --threads "$THREADS" --scale "$SCALE" --repeat 3 \
    --hw "$R/hw-$TAG.json" --out "$OUT" | tee -a "$R/peers-$TAG.txt"
done
SF=$(python3 -c "print(max(0.01, float('$SCALE')))")
export FB_CALIBRATION="$R/calibration-$TAG.json"
"$B/fbench" calibrate --threads "$THREADS" --out "$FB_CALIBRATION" | tee "$R/calibration-$TAG.txt"
"$B/fbench" plan ssb --sf "$SF" --threads "$THREADS" --repeat 3 --placement cpu,gpu,hybrid,auto --peer duckdb --predict \
  --json "$R/ssb-sf$SF-$TAG.json" --plot "$R/ssb-sf$SF-$TAG.svg" | tee "$R/ssb-sf$SF-$TAG.txt"
echo "results_all: done; see $R/*-$TAG.*" >&2
