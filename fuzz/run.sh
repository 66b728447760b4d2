#!/bin/sh
# Runs every fuzz target, FUZZ_JOBS (default 2) at a time, and prints a line
# per target: executions, seconds, crashes found (crash-*/leak-*/timeout-* files).
#   make fuzz        FUZZ_SECONDS (default 60) each
#   make fuzz-long   FUZZ_RUNS=10000000 executions or FUZZ_SECONDS=1800, whichever comes first
# A crash stops its target and makes the run fail; the input is kept in
# $dir/findings/<target>/.
set -eu
dir=${1:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-0}
jobs=${FUZZ_JOBS:-2}
mkdir -p "$dir/logs"
one() {
  t=$1
  n=$(basename "$t")
  mkdir -p "$dir/corpus/$n" "$dir/findings/$n"
  seeds=""
  [ -d "fuzz/corpus/$n" ] && seeds="fuzz/corpus/$n"
  extra=""
  [ "$runs" -gt 0 ] && extra="-runs=$runs"
  rc=0
  "$t" -max_total_time="$secs" $extra -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$dir/findings/$n/" "$dir/corpus/$n" $seeds >"$dir/logs/$n.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/logs/$n.log" | tail -1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$dir/logs/$n.log" | tail -1)
  found=$(ls "$dir/findings/$n" | wc -l)
  printf '%-14s %12s executions %6s s  findings %s  (exit %s, log %s)\n' "$n" "${execs:-?}" "${took:-?}" "$found" "$rc" "$dir/logs/$n.log"
  [ "$rc" -eq 0 ] && [ "$found" -eq 0 ]
}
export dir secs runs
fail=0
for t in "$dir"/fuzz/fuzz_*; do [ -x "$t" ] && echo "$t"; done > "$dir/logs/targets"
# Each target in its own process, `jobs` at a time.
while read -r t; do
  while [ "$(jobs -p | wc -l)" -ge "$jobs" ]; do sleep 1; done
  ( one "$t" ) > "$dir/logs/$(basename "$t").result" 2>&1 &
done < "$dir/logs/targets"
wait
for t in $(cat "$dir/logs/targets"); do
  r="$dir/logs/$(basename "$t").result"
  cat "$r"
  grep -q 'findings 0  (exit 0' "$r" || fail=1
done
exit $fail
