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


# ---- the header list is a snapshot


def mutate(headers):
    """What an app could do to its list after start_response: none of it may be sent."""
    headers.append(("X-A", "b\r\nSet-Cookie: evil=1"))
    headers.append("not a tuple")
    headers.append((1, 2))
    headers[0] = ("Content-Type", "evil\r\nX-Injected: 1")
    del headers[1]


class MutatingFile:
    """A real file whose tell() changes the response header list (sendfile path)."""

    def __init__(self, headers):
        self.f = open(STATIC, "rb")  # noqa: SIM115 - closed by close()
        self.headers = headers

    def fileno(self):
        return self.f.fileno()

    def tell(self):
        self.headers.append(("X-Late", "a\r\nSet-Cookie: evil=1"))
        self.headers.append("not a tuple")
        return self.f.tell()

    def read(self, n=-1):
        return self.f.read(n)

    def close(self):
        self.f.close()


@route("/mutate")
def mutate_list(environ, start_response):
    headers = [("Content-Type", "text/plain"), ("X-Kept", "1")]
    start_response("200 OK", headers)
    mutate(headers)
    return [b"ok"]


@route("/mutate-gen")
def mutate_gen(environ, start_response):
    headers = [("Content-Type", "text/plain"), ("X-Kept", "1")]
    start_response("200 OK", headers)

    def body():
        mutate(headers)  # before the first block, i.e. before the head is written
        yield b"ok"

    return body()


@route("/mutate-write")
def mutate_write(environ, start_response):
    headers = [("Content-Type", "text/plain"), ("X-Kept", "1")]
    write = start_response("200 OK", headers)
    mutate(headers)
    write(b"o")
    return [b"k"]


@route("/mutate-file")
def mutate_file(environ, start_response):
    headers = [("Content-Type", "application/octet-stream"), ("X-Kept", "1")]
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](MutatingFile(headers))


# ---- what the application sends


@route("/hop")
def hop(environ, start_response):
    q = query(environ)
    start_response("200 OK", PLAIN + [(q["name"], q.get("value", "x")), ("X-After", "1")])
    return [b"served"]


@route("/cl")
def content_length(environ, start_response):
    q = query(environ)
    start_response("200 OK", PLAIN + [("Content-Length", v) for v in q["v"].split("|")])
    return [q.get("body", "hello").encode()]


@route("/head-cl")
def head_cl(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", "1234")])
    if environ["REQUEST_METHOD"] == "HEAD":
        return [] if not query(environ).get("gen") else iter([])  # what Werkzeug does for send_file
    return [b"x" * 1234]


@route("/status")
def status(environ, start_response):
    start_response(query(environ)["s"], PLAIN)
    return [b"body"]


@route("/exc-info-kw")
def exc_info_kw(environ, start_response):
    write = start_response("200 OK", PLAIN)
    if query(environ).get("after"):
        write(b"partial")
    try:
        raise KeyError("original failure")
    except KeyError:
        start_response("503 Service Unavailable", PLAIN, exc_info=sys.exc_info())
    return [b"replaced"]


# ---- bodiless responses stop at the head


class Endless:
    """An endless body that counts what it produced and whether it was closed."""

    def __init__(self, start_response=None, status="200 OK"):
        self.start_response = start_response
        self.status = status

    def __iter__(self):
        if self.start_response is not None:
            # PEP 3333 lets start_response come with the first iteration.
            self.start_response(self.status, PLAIN)
        while True:
            STATE["produced"] += 1
            yield b"x" * 1000

    def close(self):
        STATE["closed"] += 1


@route("/stats")
def stats(environ, start_response):
    start_response("200 OK", JSON)
    out = {"produced": STATE["produced"], "closed": STATE["closed"]}
    STATE["produced"] = STATE["closed"] = 0
    return [json.dumps(out).encode()]


@route("/endless")
def endless(environ, start_response):
    q = query(environ)
    status = q.get("status", "200 OK")
    if q.get("lazy"):
        return Endless(start_response, status)
    start_response(status, PLAIN)
    return Endless()


@route("/endless-write")
def endless_write(environ, start_response):
    write = start_response(query(environ).get("status", "200 OK"), PLAIN)
    write(b"w")
    return Endless()


# ---- streamed blocks leave at once


def wait_for(path, seconds=5.0):
    """Polls for the file the test creates once it has read the first block."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.005)
    return False


@route("/stream-wait")
def stream_wait(environ, start_response):
    marker = query(environ)["marker"]
    start_response("200 OK", PLAIN)

    def body():
        yield b"first;"
        yield b"second" if wait_for(marker) else b"timeout"

    return body()


@route("/write-wait")
def write_wait(environ, start_response):
    write = start_response("200 OK", PLAIN)
    write(b"first;")
    return [b"second" if wait_for(query(environ)["marker"]) else b"timeout"]


# ---- wsgi.errors


@route("/print")
def print_errors(environ, start_response):
    errors = environ["wsgi.errors"]
    print("hello from print", file=errors)
    print("two", "parts", file=errors)
    errors.write("partial ")
    errors.write("line\nnext ")
    errors.flush()
    errors.write("pending at the end")
    start_response("200 OK", PLAIN)
    return [b"printed"]


# ---- FileWrapper


@route("/fw-uninit")
def fw_uninit(environ, start_response):
    fw_type = environ["wsgi.file_wrapper"]
    fw = fw_type.__new__(fw_type)
    if query(environ).get("mode") == "return":
        start_response("200 OK", PLAIN)
        return fw
    out = {"next": exc_name(lambda: next(iter(fw))), "close": exc_name(fw.close),
           "filelike": exc_name(lambda: fw.filelike)}
    start_response("200 OK", JSON)
    return [json.dumps(out).encode()]


@route("/fw-reinit")
def fw_reinit(environ, start_response):
    # fileno() re-initialises the wrapper: the file the server was about to send is dropped.
    class Sneaky(MutatingFile):
        def fileno(self):
            wrapper.__init__(open(STATIC, "rb"))  # noqa: SIM115
            return super().fileno()

    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    wrapper = environ["wsgi.file_wrapper"](Sneaky([]))
    return wrapper


def application(environ, start_response):
    handler = ROUTES.get(environ["PATH_INFO"])
    if handler is None:
        start_response("404 Not Found", PLAIN)
        return [b"not found"]
    return handler(environ, start_response)


app = application
