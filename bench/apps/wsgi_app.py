"""The one WSGI application every server in the benchmark serves.

One module, routed on PATH_INFO, so that each server loads the same file and
runs the same Python for a scenario:

    /        13 bytes, Content-Length set                 (hello)
    /nocl    13 bytes from a generator, no Content-Length (hello-nocl)
    /10k     10 KiB, Content-Length set                   (10k)
    /echo    the request body sent back (a 10 KiB POST)   (echo)
    /json    json.dumps of a small dict                   (json)
    /file    1 MiB file through wsgi.file_wrapper          (file)
    /wait    13 bytes after a 20 ms sleep (an app that waits) (wait)

The data files live in bench/.data/ (run.py writes them; override the folder
with BENCH_DATA).
"""

import json
import os
import time

HELLO = b"Hello, World!"
TEN_K = b"x" * 10240
DATA = os.environ.get("BENCH_DATA") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".data")
FILE_PATH = os.path.join(DATA, "1mb.bin")
BLOCK = 65536

_TEXT = ("Content-Type", "text/plain")


def _hello_generator():
    yield HELLO


def _read_blocks(f):
    try:
        while True:
            block = f.read(BLOCK)
            if not block:
                return
            yield block
    finally:
        f.close()


def application(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    if path == "/":
        start_response("200 OK", [_TEXT, ("Content-Length", "13")])
        return [HELLO]
    if path == "/nocl":
        start_response("200 OK", [_TEXT])
        return _hello_generator()
    if path == "/10k":
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", "10240")])
        return [TEN_K]
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/json":
        body = json.dumps({"message": "Hello, World!", "id": 42, "ok": True, "tags": ["a", "b"]}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/file":
        f = open(FILE_PATH, "rb")
        size = os.fstat(f.fileno()).st_size
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
        wrapper = environ.get("wsgi.file_wrapper")
        return wrapper(f, BLOCK) if wrapper is not None else _read_blocks(f)
    if path == "/wait":
        # Stands for a database or upstream call: the thread waits, the GIL is free.
        time.sleep(0.020)
        start_response("200 OK", [_TEXT, ("Content-Length", "13")])
        return [HELLO]
    start_response("404 Not Found", [_TEXT, ("Content-Length", "9")])
    return [b"not found"]
