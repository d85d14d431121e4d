"""Endpoints for tests/test_threads.py: an app that waits, served with --threads.

Counters are per worker process; the tests run one worker.
"""

import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

LOCK = threading.Lock()
STATE = {"active": 0, "max_active": 0, "closes": 0, "streams_closed": 0, "threads": set()}
LOCAL = threading.local()
CHUNK = b"s" * 65536


def text(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Tracked:
    """An iterable whose close() is counted (PEP 3333: called in every case)."""

    def __init__(self, chunks, key="closes"):
        self.chunks = chunks
        self.key = key

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        with LOCK:
            STATE[self.key] += 1


def sleep_tracked(seconds):
    with LOCK:
        STATE["active"] += 1
        STATE["max_active"] = max(STATE["max_active"], STATE["active"])
        STATE["threads"].add(threading.get_ident())
    try:
        time.sleep(seconds)
    finally:
        with LOCK:
            STATE["active"] -= 1


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/sleep":
        sleep_tracked(float(q.get("s", "0.25")))
        return text(start_response, q.get("tag", "slept").encode())
    if path == "/fast":
        return text(start_response, b"fast")
    if path == "/state":
        with LOCK:
            out = {k: (len(v) if isinstance(v, set) else v) for k, v in STATE.items()}
        out["multithread"] = environ["wsgi.multithread"]
        out["blocks"] = sys.getallocatedblocks()
        return text(start_response, json.dumps(out).encode())
    if path == "/reset":
        with LOCK:
            STATE.update(active=0, max_active=0, threads=set())
        return text(start_response, b"reset")
    if path == "/local":
        # threading.local through a wait: another request on another thread meanwhile.
        LOCAL.rid = q["id"]
        time.sleep(float(q.get("s", "0.01")))
        return text(start_response, json.dumps({"id": LOCAL.rid, "env_id": q["id"]}).encode())
    if path == "/stream":
        # Blocks with waits between them, each sent as it is yielded.
        start_response("200 OK", [("Content-Type", "text/plain")])
        n = int(q.get("n", "3"))
        gap = float(q.get("gap", "0.3"))

        def blocks():
            for i in range(n):
                yield f"block {i} of {q.get('tag', '')}\n".encode()
                if i + 1 < n:
                    time.sleep(gap)

        return Tracked(blocks(), "streams_closed")
    if path == "/endless":
        # Never ends by itself: only the client going away stops it (close() is counted).
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def forever():
            while True:
                yield CHUNK
                time.sleep(0.001)

        return Tracked(forever(), "streams_closed")
    if path == "/big-stream":
        # n chunks of 64 KiB, produced faster than a slow client reads them.
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        n = int(q.get("n", "64"))
        return Tracked((CHUNK for _ in range(n)), "streams_closed")
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(int(q.get("n", "3"))):
            write(f"write {i}\n".encode())
            time.sleep(float(q.get("gap", "0.05")))
        return [b"end\n"]
    if path == "/post":
        data = environ["wsgi.input"].read()
        return text(start_response, json.dumps({"len": len(data), "sum": sum(data[::4096])}).encode())
    if path == "/slow-tracked":
        # Outlives --request-timeout; its close() is still called once it returns.
        sleep_tracked(float(q.get("s", "3")))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked([b"too late"])
    return text(start_response, b"not found", "404 Not Found")
