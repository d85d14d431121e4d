"""The WSGI app of tests/test_regressions.py: one endpoint per defect, routed on PATH_INFO.

Counters live in module globals (each worker has its own copy); the tests read them through
/gens and /counts on a fresh connection.
"""

import atexit
import inspect
import os
import subprocess
import sys
import threading
import time

# Generators handed to the server, kept referenced so that only an explicit close() (never
# garbage collection) can move them to GEN_CLOSED: /gens counts those per tag.
GENERATORS = []
COUNTS = {"nocontent-yields": 0}
# The write() callable of an earlier request (defect 5a).
STORED = {}
BIG20 = b"z" * (20 << 20)
STATIC = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"fulmen-regress-{os.getpid()}.bin")
STATIC_SIZE = 54321


def marker(text):
    """A line in the server log the tests wait for (the app reached a given point)."""
    sys.stderr.write(f"regress: {text}\n")
    sys.stderr.flush()


def tracked(tag, gen):
    GENERATORS.append((tag, gen))
    return gen


def sse():
    while True:
        yield b"data: x\n\n"
        time.sleep(0.05)


def nocontent_chunks(endless):
    i = 0
    while endless or i < 3:
        COUNTS["nocontent-yields"] += 1
        yield f"chunk{i}".encode()
        i += 1
        time.sleep(0.01)


def exc_name(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the class name is the answer
        return type(e).__name__
    return "no-exception"


def read_all(inp):
    total = 0
    while True:
        block = inp.read(65536)
        if not block:
            return total
        total += len(block)


def flask_app():
    """A Flask app sending a file with send_file, or None when Flask is not installed."""
    try:
        from flask import Flask, send_file
    except ImportError:
        return None
    if not os.path.exists(STATIC):
        with open(STATIC, "wb") as f:
            f.write(b"f" * STATIC_SIZE)
        atexit.register(lambda: os.path.exists(STATIC) and os.remove(STATIC))  # runs in the master only
    fa = Flask(__name__)

    @fa.route("/flask-file")
    def send():
        return send_file(STATIC, mimetype="application/octet-stream")

    return fa


FLASK = flask_app()


def firehose():
    block = b"f" * 512
    while True:
        sum(range(200))
        yield block


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = environ.get("QUERY_STRING", "")
    text = [("Content-Type", "text/plain")]
    if path == "/":
        start_response("200 OK", text)
        return [b"hello\n"]
    if path == "/sleep":
        marker("sleeping")
        time.sleep(float(q or "1"))
        start_response("200 OK", text)
        return [b"slept"]
    if path == "/echo":
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]
    if path == "/echo-len":
        n = read_all(environ["wsgi.input"])
        start_response("200 OK", text)
        return [str(n).encode()]
    # ---- 2: the header list is mutated after start_response
    if path == "/mutate":
        headers = [("Content-Type", "text/plain")]
        start_response("200 OK", headers)

        def body():
            if q == "crlf":
                headers.append(("X-A", "b\r\nSet-Cookie: evil=1"))
            elif q == "int":
                headers.append(42)
            elif q == "triple":
                headers.append(("X-B", "c", "d"))
            yield b"mutated"

        return body()
    # ---- 4: bodies that must not be sent (HEAD, 204)
    if path == "/firehose":
        # An endless stream that a fast client keeps up with: small blocks, a little work each.
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return tracked("firehose", firehose())
    if path == "/sse":
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return tracked("sse", sse())
    if path == "/no-content":
        start_response("204 No Content", [])
        return tracked("nocontent", nocontent_chunks(endless=q != "few"))
    if path == "/gens":
        states = [t for t, g in GENERATORS if t == q and inspect.getgeneratorstate(g) == inspect.GEN_CLOSED]
        start_response("200 OK", text)
        return [str(len(states)).encode()]
    if path == "/counts":
        start_response("200 OK", text)
        return [str(COUNTS.get(q, -1)).encode()]
    # ---- 5: write() and wsgi.input belong to their request (and its thread)
    if path == "/keep-write":
        STORED["write"] = start_response("200 OK", text)
        return [b"kept"]
    if path == "/use-write":
        start_response("200 OK", text)
        return [exc_name(lambda: STORED["write"](b"evil")).encode()]
    if path == "/thread-input":
        result = {}
        t = threading.Thread(target=lambda: result.update(name=exc_name(environ["wsgi.input"].read)))
        t.start()
        t.join(10)
        start_response("200 OK", text)
        return [result.get("name", "thread-hung").encode()]
    if path == "/thread-write":
        write = start_response("200 OK", text)
        result = {}
        t = threading.Thread(target=lambda: result.update(name=exc_name(lambda: write(b"from-thread"))))
        t.start()
        t.join(10)
        return [result.get("name", "thread-hung").encode()]
    # ---- 8: a large response with a known length
    if path == "/big20":
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG20)))])
        return [BIG20]
    # ---- 9: streaming
    if path == "/trickle":
        start_response("200 OK", text)

        def lines():
            for _ in range(4):
                yield b"line\n"
                time.sleep(0.5)

        return lines()
    if path == "/write-trickle":
        write = start_response("200 OK", text)
        write(b"a")
        time.sleep(0.5)
        write(b"b")
        return []
    # ---- 10: what the app sends
    if path == "/hop":
        name, _, value = q.partition("=")
        start_response("200 OK", [("Content-Type", "text/plain"), (name, value.replace("%20", " "))])
        return [b"ok"]
    if path == "/head-cl":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1234")])
        return [b""] if q == "bytes" else []
    if path == "/flask-file" and FLASK is not None:
        return FLASK(environ, start_response)
    if path == "/cl-abc":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "abc")])
        return [b"abc"]
    if path == "/status-bare":
        start_response("200", text)
        return [b"bare"]
    if path == "/early-hints":
        start_response("103 Early Hints", [])
        return [b""]
    # ---- 12: smaller ones
    if path == "/cl-twice":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2"), ("Content-Length", "2")])
        return [b"ok"]
    if path == "/errors-print":
        print("hello", file=environ["wsgi.errors"])
        start_response("200 OK", text)
        return [b"printed"]
    if path == "/fw-new":
        fw = environ["wsgi.file_wrapper"]
        obj = fw.__new__(fw)
        start_response("200 OK", text)
        if q == "iter":
            # Iterated and closed by the app itself, as a server would.
            try:
                data = b"".join(obj)
            except Exception as e:  # noqa: BLE001 - the class name is the answer
                data = type(e).__name__.encode()
            try:
                obj.close()
            except Exception:  # noqa: BLE001
                pass
            return [data]
        return obj
    if path == "/fds":
        out = subprocess.run(["ls", "-l", "/proc/self/fd"], close_fds=False, capture_output=True, check=False)
        start_response("200 OK", text)
        return [out.stdout]
    if path == "/pid":
        start_response("200 OK", text)
        return [str(os.getpid()).encode()]
    start_response("404 Not Found", text)
    return [b"not found"]


app = application
