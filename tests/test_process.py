"""The master and its workers: binding, restarts, signals."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import APPS, connect_burst, raise_nofile, read_response, recv_until_closed, request, server_env

GET = b"GET /pid HTTP/1.1\r\nHost: a\r\n\r\n"


def pid_of_response(srv) -> int:
    return int(request(srv, GET)[2])


def test_startup_prints_address_and_serves(serve):
    srv = serve("basic:app")
    assert any("Listening at: http://127.0.0.1:" in line for line in srv.lines)
    assert request(srv, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")[2] == b"hello world!\n"


def test_several_workers_each_with_its_loop(serve):
    srv = serve("--workers", "2", "basic:app")
    deadline = time.monotonic() + 20
    while sum("ready" in line for line in srv.lines) < 2:
        assert time.monotonic() < deadline, srv.log
        time.sleep(0.02)
    assert len(srv.worker_pids()) == 2
    # Both serve: the kernel hands connections to whichever worker accepts first;
    # hold a slow request on one so the other must answer.
    slow = srv.connect()
    slow.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.2)  # let one worker pick the slow request up (no readiness signal exists for this)
    pids = {pid_of_response(srv) for _ in range(5)}
    assert read_response(slow)[2] == b"slept"
    slow.close()
    assert pids and pids <= set(srv.worker_pids())


def test_dead_worker_is_replaced(serve):
    srv = serve("basic:app")
    first = pid_of_response(srv)
    with srv.connect() as s:
        s.sendall(b"GET /crash HTTP/1.1\r\nHost: a\r\n\r\n")
        assert recv_until_closed(s) == b""
    srv.wait_for(f"Worker {first} exited with status 13; restarting")
    srv.wait_for("Booting worker with pid")
    second = pid_of_response(srv)
    assert second != first


def test_killed_worker_is_replaced(serve):
    srv = serve("basic:app")
    first = pid_of_response(srv)
    os.kill(first, signal.SIGKILL)
    srv.wait_for(f"Worker {first} was killed by signal 9")
    assert pid_of_response(srv) != first


def test_sigterm_finishes_requests_in_flight(serve):
    srv = serve("basic:app")
    pid_of_response(srv)
    s = srv.connect()
    s.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.3)  # the request must be in the app when the signal comes
    srv.proc.send_signal(signal.SIGTERM)
    status, headers, body, _ = read_response(s)
    assert status == 200 and body == b"slept"
    assert recv_until_closed(s) == b""  # and then the connection ends
    assert srv.proc.wait(10) == 0
    srv.wait_for("Shutting down: master")


def test_sigint_stops_at_once(serve):
    srv = serve("basic:app")
    pid_of_response(srv)
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(10) == 0
    assert time.monotonic() - start < 5


def test_sighup_replaces_workers(serve):
    srv = serve("basic:app")
    first = pid_of_response(srv)
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_for("Hang-up: reloading")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = srv.worker_pids()
        if first not in pids and len(pids) == 1:
            break
        time.sleep(0.05)
    assert pid_of_response(srv) != first


def test_workers_exit_when_master_is_killed(serve):
    srv = serve("--workers", "2", "basic:app")
    pid_of_response(srv)
    workers = srv.worker_pids()
    assert len(workers) == 2
    srv.allowed_rc = {-signal.SIGKILL}
    srv.proc.kill()
    srv.proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in workers):
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{p}") for p in workers)


def test_unix_socket(serve, tmp_path):
    path = tmp_path / "fulmen.sock"
    srv = serve("--bind", f"unix:{path}", "basic:app")
    assert srv.unix_path == str(path)
    status, _, body, _ = request(srv, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status == 200 and body == b"hello world!\n"
    srv.stop()
    assert not path.exists()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 in this Python")
def test_ipv6_and_several_binds(serve):
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    srv = serve("--bind", "[::1]:0", "--bind", "127.0.0.1:0", "basic:app")
    v6 = srv.wait_for(r"Listening at: http://\[::1\]:(\d+)")
    v4 = srv.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)")
    assert requests.get(f"http://[::1]:{v6.group(1)}/").text == "hello world!\n"
    assert requests.get(f"http://127.0.0.1:{v4.group(1)}/").text == "hello world!\n"


def test_burst_of_1000_connects(serve):
    raise_nofile(2200)
    srv = serve("basic:app")
    socks = connect_burst(srv, 1000, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", timeout=20)
    ok = sum(1 for s in socks if recv_until_closed(s, 20).startswith(b"HTTP/1.1 200 OK"))
    for s in socks:
        s.close()
    assert ok == 1000


def test_factory_and_module_default(serve):
    srv = serve("basic:create_app('made')")
    assert request(srv, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")[2] == b"made"
    srv2 = serve("basic")  # module alone means module:application
    assert request(srv2, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")[2] == b"hello world!\n"


def test_fulmen_run_from_python(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(APPS)!r})\n"
        "import fulmen, basic\n"
        "fulmen.run(basic.app, host='127.0.0.1', port=0, workers=1)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=server_env())
    try:
        port = None
        for line in proc.stdout:
            if "Listening at:" in line:
                port = int(line.rsplit(":", 1)[1].split()[0])
                break
        assert port
        assert requests.get(f"http://127.0.0.1:{port}/").text == "hello world!\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_app_import_error_exit_code(tmp_path):
    (tmp_path / "broken.py").write_text("import nonexistent_module_xyz\n")
    r = subprocess.run([sys.executable, "-m", "fulmen", "--chdir", str(tmp_path), "-b", "127.0.0.1:0", "broken:app"],
                       capture_output=True, text=True, timeout=30, env=server_env())
    assert r.returncode == 4
    assert "Traceback" in r.stderr and "nonexistent_module_xyz" in r.stderr


def test_reuse_port_spreads_connections_over_workers(serve):
    srv = serve("--workers", "2", "--reuse-port", "basic:app")
    pids = set()
    for _ in range(40):  # new connections: the kernel hashes each to one of the group's sockets
        pids.add(pid_of_response(srv))
    assert pids == set(srv.worker_pids())
    # Every worker listens on the shared socket and on one of its own (once the sockets of the
    # connections just made are closed: the server closes its end after the client's).
    srv.check_no_leaked_connections()
    for pid in srv.worker_pids():
        assert srv.socket_fds(pid) == srv.socket_fds(srv.proc.pid) + 1
