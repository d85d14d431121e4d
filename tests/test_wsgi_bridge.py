"""The CPython bridge (src/wsgi) at its edges, end to end over real sockets, one worker.

The app is tests/apps/bridge.py. Nothing here asserts timing: where streaming matters the app
waits (at most 5 s) for a marker file the test creates once it has read the first block, and
sends "timeout" instead of the rest when the marker never comes.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlencode

import pytest

from conftest import read_response, recv_until_closed, request

STATIC = b"0123456789" * 100


@pytest.fixture(scope="module")
def srv(serve_module):
    return serve_module("--log-level", "debug", "bridge:app")


def get(srv, path: str, method: str = "GET", body: bytes = b"", version: str = "1.1"):
    head = f"{method} {path} HTTP/{version}\r\nHost: t\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return request(srv, head.encode() + b"\r\n" + body)


def then_ok(s) -> None:
    """The connection still carries a well-framed response after the one just read."""
    s.sendall(b"GET /gen-empty HTTP/1.1\r\nHost: t\r\n\r\n")
    status, headers, body, left = read_response(s)
    assert (status, headers["content-length"], body, left) == (200, "0", b"", b"")


def mark_log(srv) -> None:
    """Waits until everything the worker logged so far has been read from its output."""
    msg = f"marker-{uuid.uuid4().hex}"
    assert get(srv, f"/log?msg={msg}")[0] == 200
    srv.wait_for(re.escape(msg))


# ---------------------------------------------------------------- write() and wsgi.input per request


def test_kept_write_and_input_raise_once_their_request_ended(srv):
    with srv.connect() as s:
        s.sendall(b"GET /keep HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s)[2] == b"kept"
        # Same connection, then a fresh one: neither may receive the kept objects' effects.
        s.sendall(b"POST /use-kept HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        status, _, body, _ = read_response(s)
    assert status == 200 and b"INJECTED" not in body
    assert json.loads(body) == {"write": "RuntimeError", "read": "RuntimeError", "readline": "RuntimeError",
                                "iter": "RuntimeError"}
    status, _, body, _ = get(srv, "/use-kept-later")
    assert (status, body) == (200, b"mine-kept write raised RuntimeError")


def test_write_input_and_start_response_refuse_other_threads(srv):
    status, _, body, _ = get(srv, "/threads", "POST", b"body")
    assert status == 200 and b"FROM-THREAD" not in body
    assert json.loads(body) == {"write": "RuntimeError", "read": "RuntimeError", "start_response": "RuntimeError",
                                "body": "body"}


def test_thread_reading_while_the_worker_waits_for_the_body(srv):
    # The worker releases the GIL while it waits for a body past max_body_buffer; another
    # thread's read is refused and the worker's own GIL bookkeeping stays intact.
    body = b"z" * (3 << 20)
    for _ in range(2):
        status, _, got, _ = get(srv, "/read-with-thread", "POST", body)
        assert status == 200 and json.loads(got) == {"read": "RuntimeError", "len": len(body)}
    assert get(srv, "/gen-one")[2] == b"only"
