"""--threads (issue 10): an app that waits stalls only its own thread, never the worker.

Real sockets against one worker whose app runs on a pool of Python threads (tests/apps/threaded.py,
and the Flask and Django apps for per-request state). Timing bounds are generous: they prove
concurrency (32 sleeps of 0.25 s on 16 threads take about 0.5 s, not 8 s), not speed.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest

from conftest import connect_burst, raise_nofile, read_response, recv_until_closed, request


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def state(srv) -> dict:
    status, _, body, _ = request(srv, get("/state"))
    assert status == 200
    return json.loads(body)


def wait_state(srv, key: str, want: int, timeout: float = 10.0) -> dict:
    """Polls /state until key reaches want (close() runs on a thread after the client left)."""
    deadline = time.monotonic() + timeout
    while True:
        st = state(srv)
        if st[key] >= want or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


def start(serve, *args: str):
    return serve("--workers", "1", *args, "threaded:app")


# ---------------------------------------------------------------- concurrency


def test_32_sleeps_on_16_threads_take_about_two_rounds(serve):
    srv = start(serve, "--threads", "16")
    assert state(srv)["multithread"] is True
    t0 = time.monotonic()
    socks = connect_burst(srv, 32, get("/sleep?s=0.25"))
    answers = [read_response(s) for s in socks]
    elapsed = time.monotonic() - t0
    for s in socks:
        s.close()
    assert [a[0] for a in answers] == [200] * 32 and all(a[2] == b"slept" for a in answers)
    # Two rounds of 16 parallel sleeps: about 0.5 s; serially it would be 8 s.
    assert 0.45 < elapsed < 1.5, elapsed
    st = state(srv)
    assert st["max_active"] == 16 and st["threads"] == 16


def test_inline_default_is_not_multithreaded(serve):
    srv = start(serve)
    assert state(srv)["multithread"] is False


def test_new_connections_are_served_while_every_thread_sleeps(serve):
    srv = start(serve, "--threads", "2")
    sleepers = connect_burst(srv, 2, get("/sleep?s=1.5"))
    # Both threads are taken once the app has counted them as active.
    deadline = time.monotonic() + 5
    while state_active(srv) < 2:
        assert time.monotonic() < deadline, "the sleepers never started"
        time.sleep(0.02)
    t0 = time.monotonic()
    # The loop itself still accepts, parses and answers what needs no thread at once...
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
        status, _, _, _ = read_response(s)
    assert status == 400 and time.monotonic() - t0 < 1.0
    # ...and requests for the app wait for a thread, then are answered.
    newcomers = connect_burst(srv, 4, get("/fast"))
    answers = [read_response(s) for s in newcomers]
    assert [(a[0], a[2]) for a in answers] == [(200, b"fast")] * 4
    assert [read_response(s)[0] for s in sleepers] == [200, 200]
    for s in sleepers + newcomers:
        s.close()


def state_active(srv) -> int:
    # /state itself needs a thread; with both taken, use a raw probe with a short wait instead.
    with srv.connect() as s:
        s.settimeout(0.3)
        s.sendall(get("/state"))
        try:
            return json.loads(read_response(s)[2])["active"]
        except (socket.timeout, TimeoutError):
            return 2  # No thread free to answer: both sleep.


@pytest.mark.parametrize("app,path", [
    ("threaded:app", "/local?id={i}&s={s}"),
    ("flask_app:app", "/wait-echo?id={i}&s={s}"),
    ("djangoproj.wsgi:application", "/wait-echo/?id={i}&s={s}"),
])
def test_400_concurrent_requests_each_get_their_own_answer(serve, app, path):
    raise_nofile(2048)
    srv = serve("--workers", "1", "--threads", "16", "--backlog", "1024", app)
    n = 400
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((srv.host, srv.port))
        socks.append(s)
    for i, s in enumerate(socks):
        s.setblocking(True)
        s.settimeout(60)
        # Waits of 0-9 ms, so requests finish out of order and overlap on the threads.
        s.sendall(get(path.format(i=f"req-{i}", s=(i % 10) / 1000)))
    for i, s in enumerate(socks):
        status, _, body, _ = read_response(s)
        s.close()
        assert status == 200, body
        got = json.loads(body)
        want = f"req-{i}"
        assert got["id"] == want and got.get("env_id", got.get("args_id")) == want


def test_pipelined_requests_stay_in_order(serve):
    srv = start(serve, "--threads", "8")
    with srv.connect() as s:
        # The first waits longest: on threads the later ones would finish first.
        s.sendall(b"".join(get(f"/sleep?s={0.3 - i * 0.05:.2f}&tag=r{i}") for i in range(5)))
        tags = [read_response(s)[2] for _ in range(5)]
    assert tags == [f"r{i}".encode() for i in range(5)]


# ---------------------------------------------------------------- bodies and streams


@pytest.mark.parametrize("expect", [False, True])
def test_large_body_is_read_on_the_thread(serve, expect):
    srv = start(serve, "--threads", "4")
    body = bytes(range(256)) * (12 << 10)  # 3 MiB, past max_body_buffer
    with srv.connect() as s:
        head = f"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
        if expect:
            s.sendall(head.encode() + b"Expect: 100-continue\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        else:
            s.sendall(head.encode() + b"\r\n")
        s.sendall(body)
        status, _, got, _ = read_response(s)
    assert status == 200 and json.loads(got) == {"len": len(body), "sum": sum(body[::4096])}


def test_a_body_that_trickles_blocks_only_its_thread(serve):
    srv = start(serve, "--threads", "2", "--max-body-buffer", "1024")
    with srv.connect() as slow:
        slow.sendall(b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 4000\r\n\r\n" + b"a" * 2000)
        # The app reads on its thread and waits for the rest; the other thread serves others.
        t0 = time.monotonic()
        for _ in range(5):
            assert request(srv, get("/fast"))[2] == b"fast"
        assert time.monotonic() - t0 < 2.0
        slow.sendall(b"b" * 2000)
        status, _, got, _ = read_response(slow)
    assert status == 200 and json.loads(got)["len"] == 4000


def test_streams_and_write_from_threads_are_sent_as_produced(serve):
    srv = start(serve, "--threads", "4")
    socks = []
    for i in range(3):
        s = srv.connect()
        s.sendall(get(f"/stream?n=3&gap=0.4&tag=c{i}"))
        socks.append(s)
    w = srv.connect()
    w.sendall(get("/write?n=3&gap=0.4"))
    # The first block of every stream arrives before its generator has made the next one.
    t0 = time.monotonic()
    for s in socks + [w]:
        s.settimeout(5)
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK")
        assert b"block 0" in first or b"write 0" in first
    assert time.monotonic() - t0 < 0.4 * 2
    for i, s in enumerate(socks):
        rest = recv_all_chunked(s, first_part=None)
        assert rest.endswith(f"block 2 of c{i}\n".encode())
        s.close()
    assert recv_all_chunked(w, first_part=None).endswith(b"write 2\nend\n")
    w.close()
    assert wait_state(srv, "streams_closed", 3)["streams_closed"] == 3


def recv_all_chunked(s: socket.socket, first_part) -> bytes:
    """Reads until the last-chunk; returns the raw bytes seen (chunk framing included)."""
    data = bytearray(first_part or b"")
    while not data.endswith(b"0\r\n\r\n"):
        chunk = s.recv(65536)
        assert chunk, "connection closed before the last chunk"
        data.extend(chunk)
    # Strip the framing: "size\r\npayload\r\n" pairs.
    out = bytearray()
    raw = bytes(data)
    while raw:
        line, _, raw = raw.partition(b"\r\n")
        size = int(line, 16)
        out += raw[:size]
        raw = raw[size + 2:]
        if size == 0:
            break
    return bytes(out)


def test_a_stream_waits_for_a_slow_reader_and_is_complete(serve):
    srv = start(serve, "--threads", "2")
    with srv.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(get("/big-stream?n=160"))  # 10 MiB produced faster than it is read
        time.sleep(0.5)  # The client reads nothing for a while: the thread must wait, bounded.
        assert request(srv, get("/fast"))[2] == b"fast"  # the other thread still serves
        status, _, body, _ = read_response(s)
    assert status == 200 and len(body) == 160 * 65536 and body == b"s" * len(body)


def test_a_client_that_never_reads_is_dropped_after_send_timeout(serve):
    srv = start(serve, "--threads", "2", "--send-timeout", "1")
    before = state(srv)["streams_closed"]
    s = srv.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(get("/endless"))
    # The thread stops producing once the client is too slow; close() is called.
    assert wait_state(srv, "streams_closed", before + 1)["streams_closed"] == before + 1
    s.close()


def test_client_vanishing_mid_stream_ends_the_threads_work(serve):
    srv = start(serve, "--threads", "4")
    before = state(srv)["streams_closed"]
    for _ in range(5):
        s = srv.connect()
        s.sendall(get("/endless"))
        assert len(s.recv(65536)) > 0
        # A reset, not a polite close: the next write fails at once.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    st = wait_state(srv, "streams_closed", before + 5)
    assert st["streams_closed"] == before + 5
    assert request(srv, get("/fast"))[2] == b"fast"


# ---------------------------------------------------------------- --request-timeout


def test_request_timeout_answers_504_and_logs_the_stack(serve):
    srv = start(serve, "--threads", "2", "--request-timeout", "1")
    before = state(srv)["closes"]
    with srv.connect() as s:
        t0 = time.monotonic()
        s.sendall(get("/slow-tracked?s=4"))
        status, headers, body, _ = read_response(s)
        elapsed = time.monotonic() - t0
        assert status == 504 and headers["connection"] == "close"
        assert recv_until_closed(s) == b""  # closed after the 504
    assert 0.9 < elapsed < 3.0, elapsed
    m = srv.wait_for(r"request timed out after 1\.000 s \(--request-timeout\): GET /slow-tracked\?s=4 HTTP/1\.1")
    assert m
    log = srv.log
    at = log.index("request timed out")
    assert "in sleep_tracked" in log[at:] and "time.sleep(seconds)" in log[at:]
    # The worker serves others meanwhile, and the thread's late result is dropped with close().
    assert request(srv, get("/fast"))[2] == b"fast"
    assert wait_state(srv, "closes", before + 1)["closes"] == before + 1


# ---------------------------------------------------------------- --max-pending


def test_max_pending_holds_requests_back_without_503(serve):
    srv = start(serve, "--threads", "2", "--max-pending", "1", "--log-level", "debug")
    t0 = time.monotonic()
    socks = connect_burst(srv, 10, get("/sleep?s=0.2"))
    answers = [read_response(s) for s in socks]
    elapsed = time.monotonic() - t0
    for s in socks:
        s.close()
    assert [a[0] for a in answers] == [200] * 10
    assert elapsed > 0.9  # five rounds of two
    assert state(srv)["max_active"] == 2
    srv.wait_for(r"all 2 threads busy and 3 requests in flight \(--max-pending\): new requests wait")


# ---------------------------------------------------------------- reference leaks


def test_threaded_requests_leak_no_references(serve):
    srv = start(serve, "--threads", "4")
    kinds = [get("/fast"), get("/stream?n=3&gap=0"), get("/write?n=2&gap=0"), get("/local?id=x&s=0"),
             b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"]

    def rounds(n: int) -> None:
        def client() -> None:
            with srv.connect() as s:
                for _ in range(n):
                    for raw in kinds:
                        s.sendall(raw)
                        assert read_response(s)[0] == 200

        ts = [threading.Thread(target=client) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)

    rounds(20)  # warm-up: pools, caches, thread states
    b0 = state(srv)["blocks"]
    rounds(100)
    b1 = state(srv)["blocks"]
    # 2000 requests; one object lost per request would be thousands of blocks.
    assert b1 - b0 < 200, (b0, b1)
