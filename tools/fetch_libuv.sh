#!/usr/bin/env bash
# Fetches a pinned libuv source tree into DIR, for wheels that link libuv statically
# (CMake's FULMEN_LIBUV_SOURCE). The source is libuv 1.48.0 as uvloop 0.21.0 vendors
# it, taken from uvloop's sdist on PyPI (a registry every build machine reaches) and
# checked against its sha256 before use.
#   tools/fetch_libuv.sh build/libuv-src
set -euo pipefail
dir=$1
url=https://files.pythonhosted.org/packages/af/c0/854216d09d33c543f12a44b393c402e89a920b1a0a7dc634c42de91b9cf6/uvloop-0.21.0.tar.gz
sha256=3bf12b0fda68447806a7ad847bfa591613177275d35b6724b1ee573faa3704e3
archive=$(dirname "$dir")/uvloop-0.21.0.tar.gz
mkdir -p "$(dirname "$dir")"
[ -f "$archive" ] && echo "$sha256  $archive" | sha256sum -c --quiet 2>/dev/null || curl -sSfL -o "$archive" "$url"
echo "$sha256  $archive" | sha256sum -c --quiet
rm -rf "$dir" && mkdir -p "$dir"
tar xzf "$archive" --strip-components=3 -C "$dir" uvloop-0.21.0/vendor/libuv
grep -q "define UV_VERSION_MINOR 48" "$dir/include/uv/version.h"
echo "libuv 1.48.0 source in $dir"
