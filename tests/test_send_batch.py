"""One write per loop turn (core/send_batch.h): responses completed in one loop turn leave
together. Many keep-alive connections at once, each answer checked against its own request
(list bodies, generator bodies, bodies that declare their length, pipelined), and a stream whose next block waits for the
client: its first block must still leave while other connections keep being answered."""

from __future__ import annotations

import socket
import threading
import time

from conftest import read_response, recv_until_closed

APP = "batch_app:application"
# A list, a generator, and the two shapes that declare their length (finished in one call).
KINDS = ["/list", "/gen", "/gen-cl", "/closing"]


def _client(port: int, n: int, requests: int, failures: list[str]) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            done = 0
            while done < requests:
                # Two or three requests in one write (pipelined), each kind of body in turn.
                batch = [(KINDS[(done + k) % len(KINDS)], f"c{n}r{done + k}") for k in range(2 + n % 2)]
                s.sendall(b"".join(f"GET {p}?tag={t} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for p, t in batch))
                for _path, tag in batch:
                    status, _headers, body, _ = read_response(s)
                    if status != 200 or body != tag.encode():
                        failures.append(f"{tag}: {status} {body!r}")
                done += len(batch)
    except Exception as error:  # every failure counts
        failures.append(f"client {n}: {error!r}")


def _clients_at_once(port: int, clients: int, requests: int) -> None:
    """`clients` connections side by side, each sending `requests` (pipelined) and checking
    every answer; fails with every wrong or missing one."""
    failures: list[str] = []
    threads = [threading.Thread(target=_client, args=(port, n, requests, failures)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert failures == []


def test_many_connections_each_get_their_own_answers_in_order(serve):
    _clients_at_once(serve(APP).port, 24, 120)


def test_a_streams_first_block_leaves_while_others_are_served(serve, tmp_path):
    srv = serve(APP)
    marker = tmp_path / "got-first"
    failures: list[str] = []
    stop = threading.Event()

    def hammer(n: int) -> None:
        while not stop.is_set():
            _client(srv.port, n, 20, failures)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(f"GET /gated?marker={marker} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            got = b""
            deadline = time.monotonic() + 5
            while b"first;" not in got:  # the head and the first block, before any second
                assert time.monotonic() < deadline, got
                chunk = s.recv(4096)
                assert chunk, got
                got += chunk
            assert b"second" not in got and b"timeout" not in got
            marker.touch()
            while not got.endswith(b"0\r\n\r\n"):
                chunk = s.recv(4096)
                assert chunk, got
                got += chunk
            assert b"second" in got and b"timeout" not in got
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []


def _get(port: int, path: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        status, _headers, body, _ = read_response(s)
        return status, body


def test_every_iterable_that_declares_its_length_is_closed_once(serve):
    """The end of a body that fills its Content-Length is asked for in the same call
    (app.cc): each iterable is still closed exactly once, across many connections."""
    srv = serve(APP)
    _clients_at_once(srv.port, 8, 60)
    # _client sends whole writes of 2 or 3 requests: 60 each here.
    kinds = [KINDS[i % len(KINDS)] for n in range(8) for i in range(_sent(60, 2 + n % 2))]
    closers = sum(k in ("/gen-cl", "/closing") for k in kinds)
    assert _get(srv.port, "/closed") == (200, str(closers).encode())


def _sent(requests: int, per_write: int) -> int:
    """How many requests _client sends: whole writes until at least `requests`."""
    return -(-requests // per_write) * per_write


def test_a_body_past_its_content_length_stops_the_iterable(serve):
    """An endless generator that goes on past its Content-Length: the client gets the
    declared bytes and then the close; the generator is not asked for more (it is closed),
    and a keep-alive connection beside it, idle meanwhile, is answered while the endless
    one's client still holds its connection open."""
    srv = serve(APP)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as idle, \
            socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        idle.sendall(b"GET /list?tag=before HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(idle)[2] == b"before"
        s.sendall(b"GET /overlong HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _headers, body, rest = read_response(s)
        assert (status, body, rest) == (200, b"12345", b"")
        idle.sendall(b"GET /list?tag=beside HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(idle)[:3:2] == (200, b"beside")
        assert recv_until_closed(s) == b""  # then the close: nothing past the declared length
    assert _get(srv.port, "/closed") == (200, b"1")
    srv.wait_for("longer than its Content-Length")  # the warning, read from the log as it comes
