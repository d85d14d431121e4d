"""The application of tests/test_lifecycle.py: endpoints that show which
worker answered, that stay in the application for a while (announcing it on
stderr, so a test knows without sleeping), and that write to the log."""

import os
import sys
import time

# A worker that boots while GATE.armed exists waits, still importing this
# module, until the test writes to (and closes) the FIFO at GATE.
_gate = os.environ.get("LIFECYCLE_BOOT_GATE")
if _gate and os.path.exists(_gate + ".armed"):
    with open(_gate, "rb") as _fifo:
        _fifo.read()


def _stuck_for_good() -> None:
    while True:  # a worker stuck in the application: only --timeout ends it
        time.sleep(1)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    if path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/sleep":
        sys.stderr.write(f"in the application: sleeping {query}\n")
        sys.stderr.flush()
        time.sleep(float(query or "1"))
        body = b"slept"
    elif path == "/hang":
        sys.stderr.write("in the application: hanging\n")
        sys.stderr.flush()
        _stuck_for_good()
        body = b""
    elif path == "/log":
        environ["wsgi.errors"].write(f"app says {query}\n")
        environ["wsgi.errors"].flush()
        body = b"logged"
    else:
        body = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
