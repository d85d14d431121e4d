#!/usr/bin/env bash
# Runs the end-to-end suite once per venv given, JOBS runs at a time, and prints which
# Python each run used and how it ended; a failed run's log is shown whole. A tag is a
# Python (.venv-311 ...) or "asan": the ASan+UBSan build, whose runtime is preloaded into
# the server processes only (tests/conftest.py), so a sanitizer report fails the test.
# The suite mostly waits on sockets and timers (one run alone keeps a third of one core busy),
# so runs side by side share the cores well, and each run is split over SHARDS processes
# (pytest-xdist) when that is installed.
#   tools/run_pytests.sh 310 311 312 313 asan
set -uo pipefail
jobs=${JOBS:-2}
export SHARDS=${SHARDS:-2}
mkdir -p build/logs
run() {
  local tag=$1 log=build/logs/pytest-$1.log
  local py=.venv-$tag/bin/python label=""
  local -a env=() args=()
  if [ "$tag" = asan ]; then
    env=(FULMEN_SANITIZER_PRELOAD="$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
         UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
    args=(--ignore=tests/test_cli.py)  # the CLI tests start no server: nothing for ASan to see
    label=" (ASan+UBSan build)"
  fi
  local version
  version=$("$py" -c 'import sys; print(sys.version.split()[0])')
  if [ "$SHARDS" -gt 1 ] && "$py" -c 'import xdist' 2>/dev/null; then
    args+=(-n "$SHARDS")
    label="$label, $SHARDS processes"
  fi
  local start=$SECONDS
  env "${env[@]}" "$py" -m pytest -q -p no:cacheprovider "${args[@]}" tests >"$log" 2>&1
  local rc=$?
  echo "pytest on Python $version$label: $(tail -n 1 "$log") [$((SECONDS - start)) s]"
  if [ $rc != 0 ]; then
    echo "---- $log"
    cat "$log"
  fi
  return $rc
}
export -f run
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run {}'
