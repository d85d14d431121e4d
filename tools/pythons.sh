#!/usr/bin/env bash
# The CPython interpreters the test suite runs on: the newest patch release of every
# CPython 3.10+ minor version that pyenv holds (free-threaded "t" builds excluded), or
# the python3 on PATH when pyenv holds none.
#   tools/pythons.sh tags        -> "310 311 312 313"
#   tools/pythons.sh path 311    -> /root/.pyenv/versions/3.11.7/bin/python3
set -euo pipefail
root=${PYENV_ROOT:-$HOME/.pyenv}

# "tag path" lines, one per minor version, newest patch release last within a minor.
list() {
  local found=0
  while read -r dir; do
    name=${dir##*/}
    [[ $name =~ ^3\.(1[0-9])\.[0-9]+$ ]] || continue
    [ -x "$dir/bin/python3" ] || continue
    echo "3${BASH_REMATCH[1]} $dir/bin/python3"
    found=1
  done < <(ls -d "$root"/versions/3.* 2>/dev/null | sort -V)
  if [ $found = 0 ] && command -v python3 >/dev/null; then
    tag=$(python3 -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}" if sys.version_info >= (3, 10) else "")')
    [ -n "$tag" ] && echo "$tag $(command -v python3)"
  fi
}

case ${1:-} in
  tags) list | awk '{print $1}' | uniq | tr '\n' ' ' ;;
  path) list | awk -v t="$2" '$1 == t {p = $2} END {if (p == "") exit 1; print p}' ;;
  *) echo "usage: $0 tags | path TAG" >&2; exit 2 ;;
esac
