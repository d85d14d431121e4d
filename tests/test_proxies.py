"""fulmen behind a proxy (issue 9): the PROXY protocol, X-Forwarded-* and Forwarded, and real
nginx and HAProxy in front.

Raw sockets send exact headers; the app (tests/apps/basic.py) echoes its environ, so each test
reads REMOTE_ADDR, REMOTE_PORT and wsgi.url_scheme as the application saw them.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import APPS, Server, read_response, server_env

ENVIRON = b"GET /environ HTTP/1.1\r\nHost: t\r\n\r\n"


def v1(src: str, sport: int, proto: str = "TCP4", dst: str = "10.0.0.1", dport: int = 80) -> bytes:
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src: str, sport: int, dst: str = "10.0.0.1", dport: int = 80, command: int = 1) -> bytes:
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    addrs = socket.inet_pton(family, src) + socket.inet_pton(family, dst if family == socket.AF_INET else "::1")
    body = addrs + struct.pack("!HH", sport, dport) + b"\x04\x00\x02ok"  # a TLV, skipped
    fam = 0x11 if family == socket.AF_INET else 0x21
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20 | command, fam]) + struct.pack("!H", len(body)) + body


def environ_over(sock: socket.socket, extra: bytes = b"") -> dict:
    sock.sendall(b"GET /environ HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n")
    status, _, body, _ = read_response(sock)
    assert status == 200, body
    return json.loads(body)


def closed_without_answer(sock: socket.socket) -> bool:
    """True when the server closes the connection having sent nothing at all."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    assert data == b"", data
    return True


# ---------------------------------------------------------------- PROXY protocol


@pytest.fixture(scope="module")
def proxied(serve_module) -> Server:
    return serve_module("--proxy-protocol", "basic:application")


@pytest.mark.parametrize("header", [v1("203.0.113.9", 51000), v2("203.0.113.9", 51000)], ids=["v1", "v2"])
def test_proxy_header_source_becomes_the_client_for_every_request(proxied, header):
    with proxied.connect() as s:
        s.sendall(header)
        for _ in range(3):  # keep-alive: the whole connection is the proxied client's
            env = environ_over(s)
            assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.9", "51000")


def test_proxy_v1_tcp6_and_v2_ipv6(proxied):
    for header in (v1("2001:db8::7", 443, "TCP6", "::1"), v2("2001:db8::7", 443)):
        with proxied.connect() as s:
            s.sendall(header)
            env = environ_over(s)
            assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("2001:db8::7", "443")


def test_proxy_header_and_request_split_anywhere(proxied):
    data = v2("198.51.100.4", 1234) + ENVIRON
    for cut in (1, 5, 12, 15, 16, 20, len(data) - 3):
        with proxied.connect() as s:
            s.sendall(data[:cut])
            s.sendall(data[cut:])
            _, _, body, _ = read_response(s)
            assert json.loads(body)["REMOTE_ADDR"] == "198.51.100.4", cut


def test_proxy_header_and_request_in_one_packet_and_byte_by_byte(proxied):
    data = v1("198.51.100.5", 99) + ENVIRON
    with proxied.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            s.sendall(data[i:i + 1])
        _, _, body, _ = read_response(s)
        assert json.loads(body)["REMOTE_ADDR"] == "198.51.100.5"


def test_local_command_and_unknown_keep_the_peer_address(proxied):
    for header in (v2("203.0.113.9", 1, command=0), b"PROXY UNKNOWN\r\n"):
        with proxied.connect() as s:
            s.sendall(header)
            assert environ_over(s)["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("data", [
    ENVIRON,                                                   # no PROXY header from a trusted source
    b"PROXY TCP4 203.0.113.9 10.0.0.1 51000\r\n" + ENVIRON,    # a field missing
    b"PROXY TCP4 999.0.113.9 10.0.0.1 1 2\r\n" + ENVIRON,      # not an address
    b"PROXY TCP4 203.0.113.9 10.0.0.1 1 2\n" + ENVIRON,        # bare LF
    b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12 + ENVIRON,  # version 3
    b"PROXY UNKNOWN " + b"x" * 200,                            # no CRLF within 107 bytes
], ids=["missing", "short", "bad-address", "bare-lf", "v3", "too-long"])
def test_bad_or_missing_proxy_header_closes_without_calling_the_app(proxied, data):
    start = len(proxied.lines)
    with proxied.connect() as s:
        s.sendall(data)
        assert closed_without_answer(s)
    proxied.wait_for("PROXY header from 127.0.0.1: connection closed", start=start)
    # Beside it, a good connection is served.
    with proxied.connect() as s:
        s.sendall(v1("203.0.113.1", 7))
        assert environ_over(s)["REMOTE_ADDR"] == "203.0.113.1"


def test_concurrent_proxied_connections_each_keep_their_own_client(proxied):
    errors: list[str] = []

    def client(i: int) -> None:
        try:
            addr = f"198.51.{i // 250}.{i % 250 + 1}"
            with proxied.connect() as s:
                s.sendall(v2(addr, 10000 + i) if i % 2 else v1(addr, 10000 + i))
                for _ in range(5):
                    env = environ_over(s)
                    if (env["REMOTE_ADDR"], env["REMOTE_PORT"]) != (addr, str(10000 + i)):
                        errors.append(f"{i}: {env['REMOTE_ADDR']}:{env['REMOTE_PORT']}")
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(f"{i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]


def test_proxy_header_from_a_source_not_allowed_is_never_believed(serve):
    srv = serve("--proxy-protocol", "--proxy-allow-from", "10.9.9.9,192.0.2.0/24", "basic:application")
    with srv.connect() as s:  # plain HTTP from elsewhere is served (a health check past the proxy)
        assert environ_over(s)["REMOTE_ADDR"] == "127.0.0.1"
    for header in (v1("203.0.113.9", 1), v2("203.0.113.9", 1)):
        start = len(srv.lines)
        with srv.connect() as s:
            s.sendall(header + ENVIRON)
            assert closed_without_answer(s)
        srv.wait_for("not in proxy_allow_from: connection closed", start=start)


def test_proxy_protocol_version_can_be_pinned(serve):
    srv = serve("--proxy-protocol", "v1", "basic:application")
    with srv.connect() as s:
        s.sendall(v1("203.0.113.2", 3))
        assert environ_over(s)["REMOTE_ADDR"] == "203.0.113.2"
    with srv.connect() as s:
        s.sendall(v2("203.0.113.2", 3) + ENVIRON)
        assert closed_without_answer(s)
    srv.wait_for("PROXY header of version 2 from 127.0.0.1, which proxy_protocol does not accept")


def test_without_proxy_protocol_a_proxy_header_is_just_a_bad_request(serve):
    srv = serve("basic:application")
    with srv.connect() as s:
        s.sendall(v1("203.0.113.9", 1) + ENVIRON)
        assert read_response(s)[0] == 400


# ---------------------------------------------------------------- X-Forwarded-* and Forwarded


@pytest.fixture(scope="module")
def plain(serve_module) -> Server:
    return serve_module("basic:application")  # forwarded_allow_ips defaults to 127.0.0.1,::1


@pytest.mark.parametrize(("headers", "addr", "scheme"), [
    (b"", "127.0.0.1", "http"),
    (b"X-Forwarded-Proto: https\r\n", "127.0.0.1", "https"),
    (b"X-Forwarded-Ssl: on\r\n", "127.0.0.1", "https"),
    (b"X-Forwarded-Proto: http\r\n", "127.0.0.1", "http"),
    (b"X-Forwarded-For: 203.0.113.50\r\n", "203.0.113.50", "http"),
    # the client's own claim on the left is passed over: the last untrusted hop wins
    (b"X-Forwarded-For: 6.6.6.6, 198.51.100.3, 127.0.0.1\r\n", "198.51.100.3", "http"),
    (b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 198.51.100.3\r\n", "198.51.100.3", "http"),
    (b"X-Forwarded-For: unknown\r\n", "127.0.0.1", "http"),
    (b'Forwarded: for="[2001:db8::9]:4711";proto=https\r\n', "2001:db8::9", "https"),
    (b"Forwarded: for=192.0.2.60;proto=http, for=127.0.0.1;proto=https\r\n", "192.0.2.60", "http"),
    (b"Forwarded: for=_hidden\r\nX-Forwarded-For: 1.2.3.4\r\n", "127.0.0.1", "http"),
], ids=["none", "proto", "ssl", "proto-http", "xff", "xff-chain", "xff-repeated", "xff-unknown",
        "forwarded-v6", "forwarded-chain", "forwarded-wins"])
def test_forwarded_headers_from_a_trusted_peer(plain, headers, addr, scheme):
    with plain.connect() as s:
        env = environ_over(s, headers)
        assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == (addr, scheme)
        # The next request on the connection, without them, is the peer's again.
        env = environ_over(s)
        assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("127.0.0.1", "http")


def test_forwarded_port_and_xff_port(plain):
    with plain.connect() as s:
        env = environ_over(s, b'Forwarded: for="[2001:db8::9]:4711"\r\n')
        assert env["REMOTE_PORT"] == "4711"
        assert environ_over(s, b"X-Forwarded-For: 203.0.113.50\r\n")["REMOTE_PORT"] == "0"


def test_contradictory_scheme_headers_get_400(plain):
    with plain.connect() as s:
        s.sendall(b"GET /environ HTTP/1.1\r\nHost: t\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n")
        assert read_response(s)[0] == 400


def test_forwarded_headers_from_an_untrusted_peer_change_nothing(serve):
    srv = serve("--forwarded-allow-ips", "10.0.0.0/8", "basic:application")
    with srv.connect() as s:
        env = environ_over(s, b"X-Forwarded-For: 203.0.113.50\r\nX-Forwarded-Proto: https\r\n"
                              b"Forwarded: for=1.2.3.4;proto=https\r\n")
        assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("127.0.0.1", "http")
        assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.50"  # still there for the app to see


@pytest.mark.parametrize("value", ["localhost", "10.0.0.1/8", "1.2.3.4/33"])
@pytest.mark.parametrize("flag", ["--forwarded-allow-ips", "--proxy-allow-from"])
def test_bad_allow_list_is_one_line_and_exit_2(flag, value):
    result = subprocess.run([sys.executable, "-m", "fulmen", flag, value, "--check-config", "basic:application"],
                            cwd=APPS, env=server_env({"PYTHONPATH": str(APPS)}), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fulmen: error: {flag}: ") and value in lines[0], lines


# ---------------------------------------------------------------- real proxies in front


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed (make test installs it: tools/need.sh)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nginx_in_front(serve, tmp_path) -> Iterator[tuple[str, Server]]:
    """nginx on a TCP port, proxying to fulmen on a unix socket with a keep-alive upstream pool."""
    nginx = _tool("nginx")
    sock = tmp_path / "fulmen.sock"
    srv = serve("--bind", f"unix:{sock}", "--forwarded-allow-ips", "", "basic:application")
    port = _free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    upstream fulmen {{ server unix:{sock}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://fulmen;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;  # as if nginx terminated TLS
        }}
    }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):  # readiness: nginx answers on its port
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                threading.Event().wait(0.05)
        yield f"http://127.0.0.1:{port}", srv
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_nginx_in_front_over_a_unix_socket_with_keepalive_upstream(nginx_in_front):
    base, srv = nginx_in_front
    failures: list[str] = []
    seen: list[dict] = []

    def client(n: int) -> None:
        with requests.Session() as s:
            for i in range(n):
                try:
                    r = s.get(f"{base}/environ", headers={"X-Forwarded-For": "203.0.113.77"}, timeout=10)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code}")
                        continue
                    if i == 0:
                        seen.append(r.json())
                except Exception as e:  # noqa: BLE001 - collected and reported below
                    failures.append(repr(e))

    threads = [threading.Thread(target=client, args=(250,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    # Over the unix socket nginx is trusted: its X-Forwarded-For is "203.0.113.77, 127.0.0.1";
    # with --forwarded-allow-ips '' no TCP address is trusted, so the right-most one is the client.
    for env in seen:
        assert env["REMOTE_ADDR"] == "127.0.0.1"
        assert env["wsgi.url_scheme"] == "https"
        assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.77, 127.0.0.1"
    assert len(seen) == 8


@pytest.fixture
def haproxy_in_front(serve, tmp_path) -> Iterator[tuple[int, Server]]:
    haproxy = _tool("haproxy")
    srv = serve("--proxy-protocol", "basic:application")
    port = _free_port()
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(f"""
global
    maxconn 256
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend web
    bind 127.0.0.1:{port}
    default_backend fulmen
backend fulmen
    server f1 127.0.0.1:{srv.port} send-proxy-v2
""")
    proc = subprocess.Popen([haproxy, "-f", str(conf), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                threading.Event().wait(0.05)
        yield port, srv
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_haproxy_send_proxy_v2_gives_the_clients_address(haproxy_in_front):
    port, srv = haproxy_in_front
    # The client connects from 127.0.0.2; HAProxy reaches fulmen from 127.0.0.1.
    for source in ("127.0.0.2", "127.0.0.3"):
        with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
            local_port = s.getsockname()[1]
            for _ in range(3):
                env = environ_over(s)
                assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (source, str(local_port))
    with requests.Session() as s:
        for _ in range(200):
            assert s.get(f"http://127.0.0.1:{port}/environ", timeout=10).json()["REMOTE_ADDR"] == "127.0.0.1"
