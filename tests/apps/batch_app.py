"""The application of tests/test_send_batch.py: answers that name their request, as a
list, from a generator (the stream path), from a generator or an iterable with close()
that declare their Content-Length (Flask's and Django's shape), a stream whose second
block waits until the client says it has the first, and one that goes on past its length.
/closed answers how many iterables were closed so far."""

import itertools
import os
import time
from urllib.parse import parse_qs


CLOSED = [0]


class Closing:
    """An iterable with close(), as Django's HttpResponse is."""

    def __init__(self, body):
        self.body = body

    def __iter__(self):
        return iter([self.body])

    def close(self):
        CLOSED[0] += 1


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
    if path == "/gen-cl":
        def declared():
            try:
                yield tag
            finally:
                CLOSED[0] += 1
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(tag)))])
        return declared()
    if path == "/closing":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(tag)))])
        return Closing(tag)
    if path == "/closed":
        body = str(CLOSED[0]).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/overlong":
        def endless():
            try:
                yield b"12345"
                for n in itertools.count():
                    yield b"more %d;" % n
            finally:
                CLOSED[0] += 1
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return endless()
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
