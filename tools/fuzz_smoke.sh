#!/usr/bin/env bash
# A short libFuzzer run per target, JOBS at a time (each run is one process on one core),
# seeded with the committed corpora; prints each target's summary, and fails on any
# finding (crash, leak, timeout) or a run that did not finish.
#   tools/fuzz_smoke.sh BUILD_DIR SECONDS TARGET...
set -uo pipefail
build=$1 seconds=$2
shift 2
jobs=${JOBS:-2}
one() {
  local build=$1 seconds=$2 t=$3 log=$1/smoke-$3.log
  rm -rf "$build/new-$t" && mkdir -p "$build/new-$t"
  "$build/fuzz_$t" -dict=fuzz/http.dict -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$build/$t-" "$build/new-$t" "fuzz/corpus/$t" >"$log" 2>&1
  local rc=$?
  echo "fuzz_$t: $(grep -E '^stat::number_of_executed_units' "$log" | sed 's/.*: *//') runs in ${seconds} s, exit $rc"
  grep -E "ERROR|SUMMARY" "$log"
  return $rc
}
export -f one
rm -f "$build"/*-crash-* "$build"/*-leak-* "$build"/*-timeout-*
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'one "$0" "$1" {}' "$build" "$seconds"
rc=$?
if ls "$build"/*-crash-* "$build"/*-leak-* "$build"/*-timeout-* >/dev/null 2>&1; then
  echo "fuzz smoke: findings in $build:"; ls "$build"/*-crash-* "$build"/*-leak-* "$build"/*-timeout-* 2>/dev/null
  exit 1
fi
exit $rc
