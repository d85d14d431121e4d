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


# ---------------------------------------------------------------- the header list is a snapshot


@pytest.mark.parametrize("path,body", [("/mutate", b"ok"), ("/mutate-gen", b"ok"), ("/mutate-write", b"ok"),
                                       ("/mutate-file", STATIC)])
def test_header_list_changed_after_start_response_is_not_sent(srv, path, body):
    # Appending ("X-A", "b\r\nSet-Cookie: evil=1") or a non-tuple after start_response, or
    # replacing an entry, changes nothing: what start_response validated is what goes out.
    with srv.connect() as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        status, headers, got, _ = read_response(s)
        assert (status, got) == (200, body)
        assert headers["x-kept"] == "1" and headers["content-type"] in ("text/plain", "application/octet-stream")
        for name in ("set-cookie", "x-a", "x-injected", "x-late"):
            assert name not in headers
        assert "evil" not in json.dumps(headers)
        then_ok(s)


# ---------------------------------------------------------------- what the application sends

HOP_BY_HOP = [("Connection", "close"), ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"),
              ("Upgrade", "websocket"), ("TE", "trailers"), ("Trailer", "X-Sum"), ("Proxy-Connection", "close")]


@pytest.mark.parametrize("name,value", HOP_BY_HOP)
def test_hop_by_hop_headers_from_the_app_are_dropped(srv, name, value):
    with srv.connect() as s:
        s.sendall(f"GET /hop?{urlencode({'name': name, 'value': value})} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        status, headers, body, _ = read_response(s)
        assert (status, body, headers["x-after"], headers["content-length"]) == (200, b"served", "1", "6")
        assert name.lower() not in headers
        then_ok(s)  # the server's own framing and keep-alive hold


def test_dropped_hop_by_hop_is_logged_once_per_worker(srv):
    for name, value in HOP_BY_HOP:
        assert get(srv, f"/hop?{urlencode({'name': name, 'value': value})}")[0] == 200
    mark_log(srv)
    assert sum("dropped the hop-by-hop header" in line for line in srv.lines) == 1


@pytest.mark.parametrize("gen", ["", "1"], ids=["list", "iterator"])
def test_head_keeps_the_app_content_length(srv, gen):
    with srv.connect() as s:
        s.sendall(f"HEAD /head-cl?gen={gen} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        status, headers, _, _ = read_response(s, head_only=True)
        assert (status, headers["content-length"]) == (200, "1234")
        s.sendall(b"GET /head-cl HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body, left = read_response(s)
        assert (status, headers["content-length"], len(body), left) == (200, "1234", 1234, b"")


@pytest.mark.parametrize("value", ["abc", "-1", "1 2", "", "+5", "5,5", "0x5", "1" * 19])
def test_invalid_content_length_from_the_app_is_a_500(srv, value):
    with srv.connect() as s:
        s.sendall(f"GET /cl?{urlencode({'v': value})} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert read_response(s)[0] == 500
        then_ok(s)
    srv.wait_for(re.escape(f"ValueError: invalid Content-Length {('Content-Length', value)!r}"))
    srv.wait_for(r"Error handling request /cl")


def test_content_length_with_surrounding_whitespace_is_accepted(srv):
    status, headers, body, _ = get(srv, f"/cl?{urlencode({'v': ' 5 '})}")
    assert (status, headers["content-length"], body) == (200, "5", b"hello")


def test_duplicate_content_length(srv):
    # RFC 9110 8.6: the same value repeated is sent once; different values are an app error.
    status, headers, body, _ = get(srv, f"/cl?{urlencode({'v': '5|5'})}")
    assert (status, headers["content-length"], body) == (200, "5", b"hello")
    assert get(srv, f"/cl?{urlencode({'v': '5|6'})}")[0] == 500
    srv.wait_for(r"ValueError: conflicting Content-Length headers \(5 and 6\)")


def test_status_without_reason_phrase(srv):
    # RFC 9112 4: the reason phrase may be empty, the space before it may not.
    with srv.connect() as s:
        s.sendall(b"GET /status?s=200 HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body, _ = read_response(s)
        assert (status, body) == (200, b"body")
        then_ok(s)
    with srv.connect() as s:
        s.sendall(b"GET /status?s=404 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert recv_until_closed(s).startswith(b"HTTP/1.1 404 \r\n")


@pytest.mark.parametrize("status", ["103 Early Hints", "100 Continue", "101 Switching Protocols", "199"])
def test_final_1xx_status_from_the_app_is_a_500(srv, status):
    with srv.connect() as s:
        s.sendall(f"GET /status?{urlencode({'s': status})} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert read_response(s)[0] == 500
        then_ok(s)
    srv.wait_for(r"ValueError: status .* is informational")


def test_exc_info_by_keyword(srv):
    status, _, body, _ = get(srv, "/exc-info-kw")
    assert (status, body) == (503, b"replaced")
    # After the head left, start_response re-raises the app's own exception, traceback included.
    with srv.connect() as s:
        s.sendall(b"GET /exc-info-kw?after=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 200 OK") and b"partial" in data and not data.endswith(b"0\r\n\r\n")
    srv.wait_for(r"raise KeyError\(\"original failure\"\)")
    srv.wait_for(r"KeyError: 'original failure'")


# ---------------------------------------------------------------- bodiless responses stop at the head


@pytest.fixture
def own_srv(serve):
    """A server of its own, for tests whose failure would hold the worker for good."""
    return serve("bridge:app")


def stats(s) -> dict:
    s.sendall(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
    status, _, body, left = read_response(s)
    assert status == 200 and left == b""
    return json.loads(body)


@pytest.mark.parametrize("lazy", [False, True], ids=["start-first", "start-in-iteration"])
@pytest.mark.parametrize("method,status", [("HEAD", "200 OK"), ("GET", "204 No Content"),
                                           ("GET", "304 Not Modified"), ("HEAD", "304 Not Modified")])
def test_bodiless_response_does_not_consume_an_endless_iterable(own_srv, method, status, lazy):
    q = urlencode({"status": status, **({"lazy": "1"} if lazy else {})})
    with own_srv.connect() as s:
        stats(s)  # reset the counters
        s.sendall(f"{method} /endless?{q} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        code, headers, _, _ = read_response(s, head_only=True)
        assert code == int(status[:3])
        if code != 200:
            assert "content-length" not in headers and "transfer-encoding" not in headers
        # Advanced only as far as start_response (PEP 3333 allows it on the first iteration),
        # and closed; no body byte precedes the next response.
        assert stats(s) == {"produced": 1 if lazy else 0, "closed": 1}


def test_head_after_write_does_not_consume_the_iterable(own_srv):
    with own_srv.connect() as s:
        stats(s)
        s.sendall(b"HEAD /endless-write HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s, head_only=True)[0] == 200
        assert stats(s) == {"produced": 0, "closed": 1}


# ---------------------------------------------------------------- streamed blocks leave at once


@pytest.mark.parametrize("version", ["1.1", "1.0"])
@pytest.mark.parametrize("path", ["/stream-wait", "/write-wait"])
def test_a_block_is_sent_before_the_next_one_is_produced(srv, tmp_path, path, version):
    marker = tmp_path / "got-first"
    with srv.connect() as s:
        s.sendall(f"GET {path}?{urlencode({'marker': str(marker)})} HTTP/{version}\r\nHost: t\r\n\r\n".encode())
        data = b""
        while b"first;" not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        marker.touch()  # the app produces the rest only now
        if version == "1.0":
            data += recv_until_closed(s)
        else:
            while not data.endswith(b"0\r\n\r\n"):
                chunk = s.recv(65536)
                assert chunk, data
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"second" in body and b"timeout" not in body
    assert b"Content-Length" not in head
    if version == "1.1":
        assert b"Transfer-Encoding: chunked" in head
    else:
        assert b"Transfer-Encoding" not in head and b"Connection: close" in head


def test_generator_framing(srv):
    # A generator's length is not known without waiting for its end: chunked, even for one
    # block. One that produces nothing at all has a known length, 0.
    status, headers, body, _ = get(srv, "/gen-one")
    assert (headers.get("transfer-encoding"), "content-length" in headers, body) == ("chunked", False, b"only")
    status, headers, body, _ = get(srv, "/gen-empty")
    assert (headers["content-length"], "transfer-encoding" in headers, body) == ("0", False, b"")


# ---------------------------------------------------------------- wsgi.errors


def test_wsgi_errors_logs_whole_lines(srv):
    assert get(srv, "/print")[2] == b"printed"
    mark_log(srv)
    # Written as they are, without the log's "[time] [pid] [ERROR]" prefix (as gunicorn).
    i = srv.lines.index("hello from print")
    assert srv.lines[i:i + 5] == ["hello from print", "two parts", "partial line", "next ", "pending at the end"]
    assert "" not in srv.lines[i:]


# ---------------------------------------------------------------- FileWrapper


def test_uninitialised_file_wrapper_raises_cleanly(srv):
    status, _, body, _ = get(srv, "/fw-uninit")
    assert status == 200
    assert json.loads(body) == {"next": "ValueError", "close": "ValueError", "filelike": "AttributeError"}
    with srv.connect() as s:
        s.sendall(b"GET /fw-uninit?mode=return HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s)[0] == 500
        then_ok(s)
    srv.wait_for("ValueError: FileWrapper is not initialised")


def test_file_wrapper_reinitialised_by_its_file_is_sent_safely(srv):
    # fileno() re-initialises the wrapper, dropping the file the server asked: the server holds
    # its own references (and its own descriptor) for what it sends.
    with srv.connect() as s:
        s.sendall(b"GET /fw-reinit HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body, _ = read_response(s)
        assert (status, headers["content-length"], body) == (200, str(len(STATIC)), STATIC)
        then_ok(s)
