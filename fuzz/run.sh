#!/bin/sh
# Runs every fuzz target for FUZZ_SECONDS (default 60) each: make fuzz
set -eu
dir=${1:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
for t in "$dir"/fuzz/fuzz_*; do
  [ -x "$t" ] || continue
  n=$(basename "$t")
  mkdir -p "$dir/corpus/$n"
  echo "== $n ($secs s)"
  seeds=""
  [ -d "fuzz/corpus/$n" ] && seeds="fuzz/corpus/$n"
  "$t" -max_total_time="$secs" -rss_limit_mb=2048 "$dir/corpus/$n" $seeds 2>&1 | tail -3
done
