#!/usr/bin/env bash
# campaign.sh - long fuzzing runs, one target at a time, one worker, at the lowest priority:
#   test/fuzz/campaign.sh SECONDS [TARGET...]      (default: every target; build the fuzz preset first)
# Each target fuzzes build/fuzz/campaign/<target> (seeded from test/fuzz/corpus/<target>, grown across
# runs); crashes land in build/fuzz/campaign/artifacts-<target>/. One line per run is appended to
# build/fuzz/campaign/log.tsv: target, date (UTC), seconds, executions, new crash files. Copy the totals to
# test/fuzz/HOURS.md, and minimized crash inputs to the corpus as regress-* files.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:?seconds per target}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(join sort agg expr arrow plan)
bin=build/fuzz/test/fuzz
out=build/fuzz/campaign
mkdir -p "$out"
for t in "${targets[@]}"; do
  work=$out/$t art=$out/artifacts-$t/
  mkdir -p "$work" "$art"
  cp -n test/fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
  before=$(ls "$art" | wc -l)
  start=$(date -u +%FT%TZ)
  t0=$(date +%s)
  set +e
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    nice -n 19 "$bin/fuzz_$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=3072 -print_final_stats=1 \
    -artifact_prefix="$art" "$work" > "$out/$t.last.log" 2>&1
  rc=$?
  set -e
  t1=$(date +%s)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t.last.log" | grep -o '[0-9]*$' || echo 0)
  after=$(ls "$art" | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\trc=%s\n' "$t" "$start" "$((t1 - t0))" "${execs:-0}" "$((after - before))" "$rc" >> "$out/log.tsv"
done
