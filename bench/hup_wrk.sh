#!/bin/bash
# Keep-alive load from wrk (64 connections, 12 s) through 3 HUPs, 3 s apart; run from tests/apps.
# usage: bench/hup_wrk.sh FULMEN_EXECUTABLE   (prints wrk's totals and its socket errors, if any)
"$1" -b 127.0.0.1:8937 -w 2 basic:app > "${TMPDIR:-/tmp}/fulmen-hup-server.log" 2>&1 &
M=$!
sleep 2
wrk -t 2 -c 64 -d 12s http://127.0.0.1:8937/ > "${TMPDIR:-/tmp}/fulmen-hup-wrk.log" 2>&1 &
W=$!
for i in 1 2 3; do sleep 3; kill -HUP $M; done
wait $W
kill -TERM $M; wait $M
grep -E "requests in|Socket errors|Non-2xx" "${TMPDIR:-/tmp}/fulmen-hup-wrk.log"
