"""HTTP/1.1 framing over raw sockets: keep-alive, pipelining, bodies, Expect, errors."""

import re
import socket

import pytest

from conftest import read_response, recv_until_closed, request


@pytest.fixture
def srv(serve):
    return serve("basic:app")


def test_keep_alive_is_default_on_http11(srv):
    with srv.connect() as s:
        for _ in range(3):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body, _ = read_response(s)
            assert status == 200 and body == b"hello world!\n"
            assert "connection" not in headers
            assert headers["content-length"] == "13"
            assert headers["server"] == "fulmen"
            assert headers["date"].endswith("GMT")


def test_http10_closes_unless_keep_alive_asked(srv):
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = recv_until_closed(s)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close\r\n" in data
    with srv.connect() as s:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body, _ = read_response(s)
            assert status == 200 and headers["connection"] == "keep-alive" and body == b"hello world!\n"


def test_connection_close_from_client(srv):
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_until_closed(s)
        assert data.count(b"HTTP/1.1 200") == 1 and b"Connection: close" in data


def _server_side_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the server's end of a loopback TCP connection (0 once the server has
    closed its descriptor: the kernel keeps the orphaned socket), None when it is gone."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
                if int(local, 16) == server_port and int(remote, 16) == client_port:
                    return int(fields[9])
    return None


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_a_consumed_request_with_close_is_closed_at_once(srv, version):
    """A client that sent "Connection: close" sends nothing more (RFC 9112 9.6): once its
    request is consumed, the close is a full close, and the server's descriptor is gone when
    the client sees the end, instead of a half-close that waits for the client's FIN (a poll,
    a read and the wait for the client, on every connection)."""
    with srv.connect() as s:
        s.sendall(f"GET / HTTP/{version}\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = recv_until_closed(s)  # the server's FIN has arrived; ours is not sent
        assert data.count(b" 200 OK") == 1
        assert _server_side_inode(srv.port, s.getsockname()[1]) == 0


@pytest.mark.parametrize(
    "raw",
    [
        # Input past the request is already there: a request pipelined after the close.
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /again HTTP/1.1\r\nHost: x\r\n\r\n",
        # HTTP/1.0 closes by default but promised nothing: more may still be on its way.
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
    ],
)
def test_other_closes_still_linger(srv, raw):
    """Any other close half-closes and drains until the client's FIN (no reset that could
    destroy the answer): the server still holds its descriptor when the client sees the end."""
    with srv.connect() as s:
        s.sendall(raw)
        data = recv_until_closed(s)
        assert data.count(b"HTTP/1.1 ") == 1
        assert _server_side_inode(srv.port, s.getsockname()[1]) not in (0, None)


def test_pipelined_requests_answered_in_order_in_one_write(srv):
    reqs = b"".join(f"GET /status?{200 + i}+X HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(16))
    with srv.connect() as s:
        s.sendall(reqs)
        # One batch of requests, one write: on loopback a single write lands in the
        # receive queue at once, so the first recv holds all 16 responses.
        s.settimeout(5)
        data = s.recv(1 << 20)
        statuses = [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
        assert statuses == [200 + i for i in range(16)]


def test_pipelined_with_bodies_and_close_at_end(srv):
    body = b"x" * 10
    reqs = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n" + body +
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    with srv.connect() as s:
        s.sendall(reqs)
        assert read_response(s)[2] == body
        assert read_response(s)[2] == b"abc"
        status, headers, b3, _ = read_response(s)
        assert b3 == b"hello world!\n" and headers["connection"] == "close"
        assert recv_until_closed(s) == b""


@pytest.mark.parametrize("mode", ["read", "readn7", "readline", "readlinen4", "readlines", "iter"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_request_body_reading_modes(srv, mode, framing):
    payload = b"line one\nline two\n\nlast line without newline"
    if framing == "length":
        raw = f"POST /echo?{mode} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload
    else:
        chunks = [payload[i : i + 5] for i in range(0, len(payload), 5)]
        enc = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
        raw = f"POST /echo?{mode} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + enc
    status, _, body, _ = request(srv, raw)
    assert status == 200
    lines = payload.split(b"\n")
    if mode in ("read",) or mode.startswith("readn"):
        assert body == payload
    elif mode.startswith("readlinen"):
        n = int(mode[9:])
        pieces = body.split(b"|")
        assert b"".join(pieces) == payload and all(len(p) <= n for p in pieces)
    else:
        expected = [line + b"\n" for line in lines[:-1]] + [lines[-1]]
        assert body == b"|".join(expected)


@pytest.mark.parametrize("mode", ["readn65536", "readn4000000", "read", "readline"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_large_body_streams_past_the_buffer(srv, mode, framing):
    # 2.5 MiB, more than max_body_buffer (1 MiB): the app's reads block for the rest,
    # whatever their size (one read of it all, as Django does; a single 2.5 MiB "line").
    payload = bytes(i % 255 + 1 for i in range(256)).replace(b"\n", b"m") * 10240
    with srv.connect() as s:
        if framing == "length":
            s.sendall(f"POST /echo?{mode} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(payload)}\r\n\r\n".encode())
            s.sendall(payload)
        else:
            s.sendall(f"POST /echo?{mode} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            for i in range(0, len(payload), 100000):
                part = payload[i : i + 100000]
                s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        status, headers, body, _ = read_response(s)
        assert status == 200 and body == payload


def test_chunked_body_with_extensions_and_trailers(srv):
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"4;name=value\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: yes\r\n\r\n")
    status, _, body, _ = request(srv, raw)
    assert status == 200 and body == b"Wikipedia"


def test_unread_body_is_discarded_before_next_request(srv):
    with srv.connect() as s:
        s.sendall(b"POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        s.sendall(b"z" * 300000)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[2] == b"ignored"
        assert read_response(s)[2] == b"hello world!\n"


def test_unread_chunked_body_is_discarded(srv):
    with srv.connect() as s:
        s.sendall(b"POST /ignore-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + b"".join(b"1000\r\n" + b"q" * 4096 + b"\r\n" for _ in range(400)) + b"0\r\n\r\n"
                  + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[2] == b"ignored"
        assert read_response(s)[2] == b"hello world!\n"


def test_expect_100_continue_sent_when_app_reads(srv):
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        s.settimeout(5)
        interim = s.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        status, _, body, _ = read_response(s)
        assert status == 200 and body == b"hello"


def test_expect_100_body_buffered_before_an_app_that_does_not_read(srv):
    # The loop answers "100 Continue" and buffers the body like any other (issue 13 item 3):
    # the app runs once the body is in, so the connection stays usable after its answer.
    with srv.connect() as s:
        s.sendall(b"POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        s.settimeout(5)
        assert s.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        status, headers, _, _ = read_response(s)
        assert status == 200 and headers.get("connection") != "close"
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 200


def test_expect_100_not_sent_when_the_body_already_came(srv):
    # A client that sent its body without waiting needs no interim answer (RFC 9110 10.1.1).
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello")
        status, _, body, _ = read_response(s)
        assert status == 200 and body == b"hello"


def test_head_gets_headers_without_body(srv):
    with srv.connect() as s:
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /stream HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _, _ = read_response(s, head_only=True)
        assert status == 200 and headers["content-length"] == "13"
        status, headers, _, _ = read_response(s, head_only=True)
        assert status == 200 and headers.get("transfer-encoding") == "chunked"
        status, headers, body, _ = read_response(s)
        assert body == b"hello world!\n"


def test_chunked_response_when_length_unknown(srv):
    with srv.connect() as s:
        s.sendall(b"GET /stream?4 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body, _ = read_response(s)
        assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
        assert body == b"chunk0\nchunk1\nchunk2\nchunk3\n"


def test_single_chunk_generator_is_chunked(srv):
    # Its block leaves before the generator is asked for another (PEP 3333 "Buffering and
    # Streaming"), so its length is never known in time: chunked. An empty one is known: 0.
    status, headers, body, _ = request(srv, b"GET /stream-one HTTP/1.1\r\nHost: x\r\n\r\n")
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers and body == b"only"
    status, headers, body, _ = request(srv, b"GET /empty-gen HTTP/1.1\r\nHost: x\r\n\r\n")
    assert headers["content-length"] == "0" and body == b""


def test_close_delimited_on_http10(srv):
    with srv.connect() as s:
        s.sendall(b"GET /stream?2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = recv_until_closed(s)
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
        assert b"Connection: close" in head and body == b"chunk0\nchunk1\n"


def test_app_content_length_is_used(srv):
    status, headers, body, _ = request(srv, b"GET /content-length HTTP/1.1\r\nHost: x\r\n\r\n")
    assert headers["content-length"] == "5" and "transfer-encoding" not in headers and body == b"hello"


def test_no_body_statuses(srv):
    for code in (204, 304):
        with srv.connect() as s:
            s.sendall(f"GET /status?{code}+X HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, headers, body, _ = read_response(s, head_only=True)
            assert status == code and "content-length" not in headers and "transfer-encoding" not in headers
            assert read_response(s)[2] == b"hello world!\n"


@pytest.mark.parametrize(
    "raw,status",
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nFoo : bar\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: a\n\n", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400),
        (b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),  # not ending in chunked
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Big: " + b"b" * 70000 + b"\r\n\r\n", 431),
    ],
)
def test_malformed_requests_get_4xx_and_close(srv, raw, status):
    with srv.connect() as s:
        s.sendall(raw)
        data = recv_until_closed(s)
        assert data.startswith(f"HTTP/1.1 {status} ".encode()), data[:200]
        assert b"Connection: close" in data
        assert data.count(b"HTTP/1.1 ") == 1


def test_nothing_parsed_after_an_error(srv):
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        data = recv_until_closed(s)
        assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 400")


def test_request_line_limit_is_an_option(serve):
    srv = serve("--max-request-line", "100", "basic:app")
    status, _, _, _ = request(srv, b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status == 414
    status, _, _, _ = request(srv, b"GET /" + b"a" * 50 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status == 404


def test_client_vanishing_mid_response_does_not_hurt(srv):
    for _ in range(5):
        s = srv.connect()
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(100)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    status, _, body, _ = request(srv, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and body == b"hello world!\n"


def test_large_responses_arrive_whole(srv):
    import hashlib

    for path in ("/big", "/big-stream"):
        status, headers, body, _ = request(srv, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert status == 200 and len(body) == 1 << 20
    with srv.connect() as s:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /big-stream HTTP/1.1\r\nHost: x\r\n\r\n")
        a = read_response(s)[2]
        b = read_response(s)[2]
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
