#!/usr/bin/env bash
# Runs the end-to-end suite once per Python (the .venv-TAG venvs), JOBS at a time, and
# prints which Python each run used and how it ended. A failed run's log is shown whole.
#   tools/run_pytests.sh 310 311 312 313
set -uo pipefail
jobs=${JOBS:-2}
mkdir -p build/logs
run() {
  local tag=$1 log=build/logs/pytest-$1.log
  local version
  version=$(.venv-"$tag"/bin/python -c 'import sys; print(sys.version.split()[0])')
  local start=$SECONDS
  .venv-"$tag"/bin/python -m pytest -q -p no:cacheprovider tests >"$log" 2>&1
  local rc=$?
  echo "pytest on Python $version: $(tail -n 1 "$log") [$((SECONDS - start)) s]"
  if [ $rc != 0 ]; then
    echo "---- $log"
    cat "$log"
  fi
  return $rc
}
export -f run
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run {}'
