#!/usr/bin/env bash
# scaling.sh - the 1-thread to all-thread speedup of a workload, measured as ratios within rounds
# (this kind of machine is shared and noisy: compare only figures taken back to back).
#     bench/scaling.sh BUILD_DIR WORKLOAD [ROUNDS] [THREADS] [SCALE]   > result.txt
# Each round runs fbench hw (the ceilings: read bandwidth and compute scaling at 1 and THREADS
# threads), then the workload at 1 thread and at THREADS threads; a summary table ends the output.
set -euo pipefail
build=${1:?build dir}; workload=${2:?workload}; rounds=${3:-3}; threads=${4:-$(nproc)}; scale=${5:-1}
fbench="$build/fbench"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "# scaling of $workload, 1 -> $threads threads, scale $scale, $rounds rounds, $(date -u +%FT%TZ)"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cpus"
summary="round  t1_s      tN_s      speedup  read_1  read_N  bw_ratio  compute_ratio  of_bound_1  of_bound_N"
for r in $(seq 1 "$rounds"); do
  "$fbench" hw --threads "$threads" --size-mb 512 --repeats 3 --json "$tmp/hw.json" > "$tmp/hw.txt" 2>/dev/null
  "$fbench" run "$workload" --threads 1 --scale "$scale" --repeat 5 --hw "$tmp/hw.json" --json "$tmp/r1.json" \
    > "$tmp/r1.txt" 2>/dev/null
  "$fbench" run "$workload" --threads "$threads" --scale "$scale" --repeat 5 --hw "$tmp/hw.json" \
    --json "$tmp/rN.json" --stats > "$tmp/rN.txt" 2>/dev/null
  echo "## round $r"; cat "$tmp/hw.txt" "$tmp/r1.txt" "$tmp/rN.txt"
  echo "json: $(tr -d '\n' < "$tmp/r1.json")"; echo "json: $(tr -d '\n' < "$tmp/rN.json")"
  line=$(python3 - "$tmp" "$r" <<'PY'
import json, sys
d, r = sys.argv[1], sys.argv[2]
hw = json.load(open(d + "/hw.json")); a = json.load(open(d + "/r1.json"))[0]; b = json.load(open(d + "/rN.json"))[0]
print(f"{r:>5}  {a['seconds']:.4f}  {b['seconds']:.4f}  {a['seconds'] / b['seconds']:7.2f}  "
      f"{hw['read_gbps_1']:6.1f}  {hw['read_gbps_all']:6.1f}  {hw['read_gbps_all'] / hw['read_gbps_1']:8.2f}  "
      f"{hw['compute_scaling_all']:13.2f}  {100 * a['bound_seconds'] / a['seconds']:9.0f}%  "
      f"{100 * b['bound_seconds'] / b['seconds']:9.0f}%")
PY
)
  summary+=$'\n'"$line"
done
echo "## summary (speedup = t1 / tN in the same round; bw_ratio and compute_ratio are the machine's own"
echo "## all-thread / 1-thread ceilings measured in that round)"
echo "$summary"
