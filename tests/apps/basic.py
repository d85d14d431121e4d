"""A WSGI app with one endpoint per behaviour the end-to-end tests check."""

import atexit
import json
import os
import sys
import time

CLOSED = {"count": 0}
BIG = os.urandom(1 << 20)
# A 1 MiB file with a known pattern (bytes 0..255 repeated) for the sendfile tests.
STATIC = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"fulmen-static-{os.getpid()}.bin")
with open(STATIC, "wb") as _f:
    _f.write(bytes(range(256)) * 4096)
atexit.register(lambda: os.path.exists(STATIC) and os.remove(STATIC))  # runs in the master only


class Tracked:
    """An iterable whose close() the tests can observe through /closes."""

    def __init__(self, chunks, fail_at=None):
        self.chunks = chunks
        self.fail_at = fail_at

    def __iter__(self):
        for i, c in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("boom while iterating")
            yield c

    def close(self):
        CLOSED["count"] += 1


def environ_json(environ):
    out = {}
    for k, v in environ.items():
        if isinstance(v, (str, bool, int)) or (isinstance(v, tuple) and k == "wsgi.version"):
            out[k] = v
    out["wsgi.input.type"] = type(environ["wsgi.input"]).__name__
    out["wsgi.errors.has_write"] = hasattr(environ["wsgi.errors"], "write")
    out["wsgi.file_wrapper.present"] = "wsgi.file_wrapper" in environ
    return out


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = environ.get("QUERY_STRING", "")
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello world!\n"]
    if path.startswith("/environ"):
        body = json.dumps(environ_json(environ)).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/echo":
        inp = environ["wsgi.input"]
        mode = q or "read"
        if mode == "read":
            data = inp.read()
        elif mode.startswith("readn"):
            n = int(mode[5:])
            parts = []
            while True:
                p = inp.read(n)
                if not p:
                    break
                assert len(p) <= n
                parts.append(p)
            data = b"".join(parts)
        elif mode == "readline":
            parts = []
            while True:
                line = inp.readline()
                if not line:
                    break
                parts.append(line)
            data = b"|".join(parts)
        elif mode.startswith("readlinen"):
            n = int(mode[9:])
            parts = []
            while True:
                line = inp.readline(n)
                if not line:
                    break
                parts.append(line)
            data = b"|".join(parts)
        elif mode == "readlines":
            data = b"|".join(inp.readlines())
        elif mode == "iter":
            data = b"|".join(list(inp))
        else:
            data = b"?"
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("X-Len", str(len(data)))])
        return [data]
    if path == "/ignore-body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ignored"]
    if path == "/stream":
        n = int(q or "3")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (f"chunk{i}\n".encode() for i in range(n))
    if path == "/stream-one":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"", b"only"])
    if path == "/empty-gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([])
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written-")
        write(b"then-")
        return [b"returned"]
    if path == "/content-length":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return iter([b"he", b"llo"])
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [BIG]
    if path == "/big-stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (BIG[i : i + 65536] for i in range(0, len(BIG), 65536))
    if path == "/file":
        f = open(STATIC, "rb")
        if q:
            f.seek(int(q))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 8192)
    if path == "/tracked":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked([b"a", b"b", b"c"])
    if path == "/tracked-fail":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked([b"a" * 10, b"b", b"c"], fail_at=2)
    if path == "/tracked-big":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked([BIG] * 8)
    if path == "/closes":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(CLOSED["count"]).encode()]
    if path == "/raise":
        raise ValueError("boom before start_response")
    if path == "/raise-after-start":
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise ValueError("boom after start_response")
    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("handled")
        except KeyError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"recovered"]
    if path == "/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"never"]
    if path == "/bad-header":
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: x=1")])
        return [b"never"]
    if path == "/hop-by-hop":
        start_response("200 OK", [("Connection", "keep-alive")])
        return [b"never"]
    if path == "/str-body":
        start_response("200 OK", [])
        return ["not bytes"]
    if path == "/no-start":
        return [b"forgot start_response"]
    if path == "/status":
        start_response(q.replace("+", " ").replace("%20", " "), [("Content-Type", "text/plain")])
        return [b"body"]
    if path == "/errors":
        environ["wsgi.errors"].write("message to wsgi.errors\n")
        environ["wsgi.errors"].flush()
        start_response("200 OK", [])
        return [b"logged"]
    if path == "/server-header":
        start_response("200 OK", [("Server", "custom"), ("Content-Type", "text/plain")])
        return [b"x"]
    if path == "/sleep":
        time.sleep(float(q or "0.5"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/alloc":
        # For the leak tests: live Python allocations after a full collection.
        import gc

        gc.collect()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{sys.getallocatedblocks()} {len(gc.get_objects())}".encode()]
    if path == "/print-stdout":
        print(f"stdout says {q}", flush=True)  # the application's own print()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"printed"]
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/crash":
        os._exit(13)
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


app = application


def create_app(greeting="factory"):
    def factory_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [greeting.encode()]

    return factory_app
