"""A WSGI app for tests/test_wsgi_bridge.py: the CPython bridge's edge cases.

One handler per path, grouped by what they exercise. STATE is per worker (the tests run one).
"""

import atexit
import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

STATE = {"produced": 0, "closed": 0, "kept": {}}
STATIC = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"fulmen-bridge-{os.getpid()}.bin")
with open(STATIC, "wb") as _f:
    _f.write(b"0123456789" * 100)
atexit.register(lambda: os.path.exists(STATIC) and os.remove(STATIC))  # runs in the master only

PLAIN = [("Content-Type", "text/plain")]
JSON = [("Content-Type", "application/json")]
ROUTES = {}


def route(path):
    def register(fn):
        ROUTES[path] = fn
        return fn

    return register


def query(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}


def exc_name(fn):
    """The name of the exception fn raises, or None."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the test wants whatever was raised
        return type(e).__name__
    return None


@route("/log")
def log_line(environ, start_response):
    environ["wsgi.errors"].write(query(environ)["msg"] + "\n")
    start_response("200 OK", PLAIN)
    return [b"logged"]


@route("/gen-one")
def gen_one(environ, start_response):
    start_response("200 OK", PLAIN)
    return (b for b in [b"", b"only"])


@route("/gen-empty")
def gen_empty(environ, start_response):
    start_response("200 OK", PLAIN)
    return (b for b in [])


# ---- write() and wsgi.input belong to their request


@route("/keep")
def keep(environ, start_response):
    STATE["kept"]["write"] = start_response("200 OK", PLAIN)
    STATE["kept"]["input"] = environ["wsgi.input"]
    return [b"kept"]


@route("/use-kept")
def use_kept(environ, start_response):
    kept = STATE["kept"]
    start_response("200 OK", JSON)
    out = {"write": exc_name(lambda: kept["write"](b"INJECTED")),
           "read": exc_name(lambda: kept["input"].read()),
           "readline": exc_name(lambda: kept["input"].readline()),
           "iter": exc_name(lambda: next(iter(kept["input"])))}
    return [json.dumps(out).encode()]


@route("/use-kept-later")
def use_kept_later(environ, start_response):
    # A kept write() called while another response streams.
    kept = STATE["kept"]
    start_response("200 OK", PLAIN)

    def body():
        yield b"mine-"
        name = exc_name(lambda: kept["write"](b"INJECTED"))
        yield f"kept write raised {name}".encode()

    return body()


@route("/threads")
def threads(environ, start_response):
    write = start_response("200 OK", JSON)
    inp = environ["wsgi.input"]
    out = {}

    def other():
        out["write"] = exc_name(lambda: write(b"FROM-THREAD"))
        out["read"] = exc_name(lambda: inp.read(1))
        out["start_response"] = exc_name(lambda: start_response("500 No", []))

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    out["body"] = inp.read().decode()
    return [json.dumps(out).encode()]


@route("/read-with-thread")
def read_with_thread(environ, start_response):
    # Another Python thread runs while this one waits for the body (the GIL is released and
    # taken back); it tries to read too.
    inp = environ["wsgi.input"]
    out = {}
    stop = threading.Event()

    def other():
        while True:
            out.setdefault("read", exc_name(lambda: inp.read(1)))
            if stop.is_set():
                break
            time.sleep(0.001)

    t = threading.Thread(target=other)
    t.start()
    data = inp.read()
    stop.set()
    t.join(10)
    out["len"] = len(data)
    start_response("200 OK", JSON)
    return [json.dumps(out).encode()]


def application(environ, start_response):
    handler = ROUTES.get(environ["PATH_INFO"])
    if handler is None:
        start_response("404 Not Found", PLAIN)
        return [b"not found"]
    return handler(environ, start_response)


app = application
