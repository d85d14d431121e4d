"""Keep-alive requests lost while a server reloads (issue 8).

    python bench/hup_loss.py [--hups 3] [--clients 16] [--workers 2] -- fulmen ARGS... TARGET

Starts the server command (it must log "Listening at: http://HOST:PORT", as
fulmen and gunicorn do), runs --clients threads of http.client keep-alive
clients sending GET / back to back, sends SIGHUP --hups times, --interval
seconds apart, and prints how many requests were answered and how many failed
(a reset, a refused connect, RemoteDisconnected, a status other than 200),
with the kinds of failure.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import re
import signal
import subprocess
import sys
import threading
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hups", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between HUPs (and before/after)")
    parser.add_argument("--path", default="/")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    host, port = "", 0
    for line in proc.stdout:
        m = re.search(r"Listening at: http://([^\s:]+):(\d+)", line)
        if m:
            host, port = m.group(1), int(m.group(2))
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # drain the log
    time.sleep(2)  # let the workers boot (a measurement tool, not a test)

    stop = threading.Event()
    ok = [0] * args.clients
    failures: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=15)
        while not stop.is_set():
            try:
                conn.request("GET", args.path)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"status {resp.status}")
                ok[i] += 1
            except Exception as error:  # every failure is counted by kind
                with lock:
                    failures[type(error).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=15)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    try:
        for _ in range(args.hups):
            time.sleep(args.interval)
            proc.send_signal(signal.SIGHUP)
        time.sleep(args.interval)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    total = sum(ok) + sum(failures.values())
    print(f"{sum(failures.values())} of {total} keep-alive requests failed over {args.hups} HUPs"
          f" ({args.clients} clients): {dict(failures) or 'none'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
