#!/usr/bin/env bash
# Checks the system tools that `make test` uses and installs the missing ones with
# apt-get (Debian/Ubuntu) when it can: as root, or through sudo without a password.
# Otherwise it prints the exact apt-get line to run and exits 2.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have pkg-config || need+=(pkg-config)
pkg-config --exists 'libuv >= 1.40' 2>/dev/null || need+=(libuv1-dev)
have g++ || need+=(g++)
have cmake || need+=(cmake)
have curl || need+=(curl)
have clang++ || need+=(clang)
have clang-format || need+=(clang-format)
# libFuzzer's runtime (fuzz smoke) ships apart from clang on Debian and Ubuntu.
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-dev)

# Real neighbours the end-to-end tests put in front of fulmen (tests/test_proxies.py).
have nginx || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
have haproxy || [ -x /usr/sbin/haproxy ] || need+=(haproxy)

[ ${#need[@]} -eq 0 ] && exit 0
line="apt-get install -y ${need[*]}"
if ! have apt-get; then
  echo "make test needs these tools (Debian/Ubuntu package names): ${need[*]}" >&2
  exit 2
fi
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif have sudo && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "make test needs: sudo $line" >&2
  exit 2
fi
echo "installing what make test needs: $line"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
