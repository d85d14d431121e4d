"""The application of tests/test_send_batch.py: answers that name their request, as a
list or from a generator (the stream path), and a stream whose second block waits until
the client says it has the first."""

import os
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    tag = query.get("tag", ["-"])[0].encode()
    path = environ["PATH_INFO"]
    if path == "/list":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(tag)))])
        return [tag]
    if path == "/gen":
        def body():
            yield tag
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body()
    if path == "/gated":
        marker = query["marker"][0]

        def gated():
            yield b"first;"
            deadline = time.monotonic() + 10
            while not os.path.exists(marker):  # the client has the first block
                if time.monotonic() > deadline:
                    yield b"timeout"
                    return
                time.sleep(0.01)
            yield b"second"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gated()
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
