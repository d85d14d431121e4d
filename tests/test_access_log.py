"""The access log (issue 9): gunicorn's format and atoms, compared line for line with a real
gunicorn serving the same app the same requests; JSON lines; exclusions; many workers and
connections writing at once; refused requests in the error log.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import APPS, LISTEN_RE, Server, read_response, server_env

# Every atom whose value does not depend on the moment or the process.
STABLE_FORMAT = ('%(h)s|%(l)s|%(u)s|"%(r)s"|%(s)s|%(m)s|%(U)s|%(q)s|%(H)s|%(B)s|%(b)s|"%(f)s"|"%(a)s"|'
                 '%({x-custom}i)s|%({content-type}o)s|%({missing}i)s|%({x-missing}o)s|%(nonsense)s|100%%')

# (method, target, headers, body) sent to both servers.
REQUESTS: list[tuple[str, str, dict[str, str], bytes]] = [
    ("GET", "/", {}, b""),
    ("GET", "/?a=1&b=%20x", {"Referer": "http://example.com/from", "User-Agent": 'ua "quoted"'}, b""),
    ("GET", "/", {"Authorization": "Basic YWxpY2U6c2VjcmV0", "X-Custom": "one"}, b""),
    ("GET", "/closes", {"Authorization": "Bearer token"}, b""),
    ("GET", "/a%20path/%C3%A9t%C3%A9", {}, b""),
    ("POST", "/echo", {"Content-Type": "application/octet-stream"}, b"x" * 1000),
    ("HEAD", "/", {}, b""),
    ("GET", "/nowhere-404", {"User-Agent": "curl/8.0"}, b""),
    ("GET", "/status?204+No+Content", {}, b""),
]


def send_all(port: int) -> None:
    # A connection per request: gunicorn's sync worker closes after each response.
    for method, target, headers, body in REQUESTS:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            head = f"{method} {target} HTTP/1.1\r\nHost: t\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            if body:
                head += f"Content-Length: {len(body)}\r\n"
            s.sendall(head.encode("latin-1") + b"\r\n" + body)
            read_response(s, head_only=method == "HEAD")


def wait_lines(path: Path, n: int, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def gunicorn_lines(tmp_path: Path, fmt: str) -> list[str]:
    """The lines a real gunicorn writes for REQUESTS, over the same app."""
    log = tmp_path / "gunicorn.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "1", "--access-logfile", str(log),
         "--access-logformat", fmt, "basic:application"],
        cwd=APPS, env=server_env({"PYTHONPATH": str(APPS)}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
        assert proc.stderr is not None
        port = None
        for line in proc.stderr:
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
            if "Booting worker" in line:
                break
        assert port, "gunicorn did not start"
        # gunicorn's worker may still be importing: the first connection waits in the backlog.
        send_all(port)
        return wait_lines(log, len(REQUESTS))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def gunicorn_available() -> None:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        pytest.skip("gunicorn cannot be imported here (make test installs it)")


def test_stable_atoms_are_byte_for_byte_gunicorns(serve, tmp_path, gunicorn_available):
    log = tmp_path / "fulmen.log"
    srv = serve("--access-logfile", str(log), "--access-logformat", STABLE_FORMAT, "basic:application")
    send_all(srv.port)
    ours = wait_lines(log, len(REQUESTS))
    theirs = gunicorn_lines(tmp_path, STABLE_FORMAT)
    assert len(ours) == len(REQUESTS), ours
    assert ours == theirs


def test_default_format_is_gunicorns_apart_from_the_time(serve, tmp_path, gunicorn_available):
    log = tmp_path / "fulmen.log"
    srv = serve("--access-logfile", str(log), "basic:application")
    send_all(srv.port)
    ours = wait_lines(log, len(REQUESTS))
    theirs = gunicorn_lines(tmp_path, '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"')
    when = re.compile(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]")
    assert all(when.search(line) for line in ours), ours
    assert [when.sub("[T]", line) for line in ours] == [when.sub("[T]", line) for line in theirs]


def test_time_atoms_and_pid(serve, tmp_path):
    log = tmp_path / "fulmen.log"
    srv = serve("--access-logfile", str(log), "--access-logformat", "%(T)s %(M)s %(D)s %(L)s %(p)s",
                "basic:application")
    requests.get(srv.url("/sleep?0.2"), timeout=10)  # basic's /sleep sleeps that long
    (line,) = wait_lines(log, 1)
    t, m, d, l, p = line.split()
    assert int(d) >= 200_000 and int(m) == int(d) // 1000 and int(t) == int(d) // 1_000_000
    assert l == f"{int(d) // 1_000_000}.{int(d) % 1_000_000:06d}"
    assert p == f"<{srv.worker_pids()[0]}>"


def test_json_lines(serve, tmp_path):
    log = tmp_path / "fulmen.log"
    srv = serve("--access-logfile", str(log), "--log-format", "json", "basic:application")
    r = requests.get(srv.url("/environ?q=1"), headers={"X-Request-ID": "req-42", "User-Agent": "t/1",
                                                      "Authorization": "Basic Ym9iOnB3"}, timeout=10)
    assert r.status_code == 200
    requests.get(srv.url("/nowhere"), timeout=10)
    first, second = (json.loads(line) for line in wait_lines(log, 2))
    assert first["remote"] == "127.0.0.1" and first["method"] == "GET" and first["path"] == "/environ"
    assert first["query"] == "q=1" and first["protocol"] == "HTTP/1.1" and first["status"] == 200
    assert first["bytes"] == len(r.content) and first["request_id"] == "req-42" and first["user"] == "bob"
    assert first["user_agent"] == "t/1" and first["referer"] is None and first["duration"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert second["status"] == 404 and second["request_id"] is None


def test_excluded_paths_are_not_logged(serve, tmp_path):
    log = tmp_path / "fulmen.log"
    srv = serve("--access-logfile", str(log), "--access-log-exclude", "/", "--access-log-exclude", "/healthz",
                "--access-logformat", "%(U)s", "basic:application")
    with requests.Session() as s:
        for path in ("/", "/healthz", "/environ", "/?x", "/healthz?probe=1", "/healthz/"):
            s.get(srv.url(path), timeout=10)
    assert wait_lines(log, 2, timeout=2) == ["/environ", "/healthz/"]


def test_forged_lines_are_impossible(serve, tmp_path):
    log = tmp_path / "fulmen.log"
    srv = serve("--access-logfile", str(log), "--access-logformat", "%(U)s %(r)s", "basic:application")
    with srv.connect() as s:
        s.sendall(b"GET /a%0a1.2.3.4%20-%20-%20fake HTTP/1.1\r\nHost: t\r\n\r\n")
        read_response(s)
    (line,) = wait_lines(log, 1)
    assert line == "/a\\x0a1.2.3.4 - - fake GET /a%0a1.2.3.4%20-%20-%20fake HTTP/1.1"


def test_many_workers_and_connections_write_whole_lines(serve, tmp_path):
    log = tmp_path / "fulmen.log"
    srv = serve("--workers", "2", "--access-logfile", str(log), "basic:application")
    errors: list[str] = []

    def client(t: int) -> None:
        with requests.Session() as s:
            for i in range(150):
                try:
                    s.get(srv.url(f"/environ?t={t}&i={i}"), headers={"User-Agent": "x" * (i * 7)}, timeout=10)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    lines = wait_lines(log, 1200)
    assert len(lines) == 1200
    line_re = re.compile(r'127\.0\.0\.1 - - \[[^]]+\] "GET /environ\?t=(\d)&i=(\d+) HTTP/1\.1" 200 \d+ "-" "(x*)"')
    seen = set()
    for line in lines:
        m = line_re.fullmatch(line)
        assert m, line
        assert len(m.group(3)) == int(m.group(2)) * 7
        seen.add((m.group(1), m.group(2)))
    assert len(seen) == 1200


def test_to_stdout_and_a_client_that_leaves_mid_response(serve, tmp_path):
    srv = serve("--access-logfile", "-", "--access-logformat", "ACCESS %(r)s %(s)s", "basic:application")
    with srv.connect() as s:
        s.sendall(b"GET /stream?1000000 HTTP/1.1\r\nHost: t\r\n\r\n")
        s.recv(100)
    srv.wait_for(r"^ACCESS GET /stream\?1000000 HTTP/1\.1 200$")
    requests.get(srv.url("/"), timeout=10)
    srv.wait_for(r"^ACCESS GET / HTTP/1\.1 200$")


def test_parser_refusals_are_warnings_rate_limited(serve):
    srv = serve("basic:application")
    start = len(srv.lines)
    for _ in range(50):
        with srv.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            assert read_response(s)[0] == 400
    srv.wait_for(r"\[WARNING\] refused a request from 127\.0\.0\.1: 400 Bad Request", start=start)
    with srv.connect() as s:
        s.sendall(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(s)[0] == 414
    time.sleep(1.1)  # the limit is per second: the next refusal opens a new second and reports the rest
    with srv.connect() as s:
        s.sendall(b"BAD\r\n\r\n")
        assert read_response(s)[0] == 400
    srv.wait_for(r"refused a request from 127\.0\.0\.1: 400 Bad Request \(\d+ more refused", start=start)
    warnings = [line for line in srv.lines[start:] if "refused a request" in line]
    # Every refusal is accounted for: logged, or counted in the next logged line.
    left_out = sum(int(m.group(1)) for line in warnings if (m := re.search(r"\((\d+) more refused", line)))
    assert len(warnings) + left_out == 52, warnings
    # At most 10 lines a second (a wall-clock second overlaps at most two of the worker's windows).
    per_second: dict[str, int] = {}
    for line in warnings:
        per_second[line[:21]] = per_second.get(line[:21], 0) + 1
    assert max(per_second.values()) <= 20 and left_out > 0, warnings


@pytest.mark.parametrize(("args", "problem"), [
    (["--access-logformat", "50% off"], "--access-logformat: expected a format"),
    (["--access-log-exclude", "healthz"], "--access-log-exclude: expected a list of request paths"),
    (["--log-format", "xml"], "--log-format: expected one of text, json"),
])
def test_bad_values_are_one_line_and_exit_2(args, problem):
    result = subprocess.run([sys.executable, "-m", "fulmen", *args, "--check-config", "basic:application"],
                            cwd=APPS, env=server_env({"PYTHONPATH": str(APPS)}), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fulmen: error: {problem}"), lines


def test_usr1_reopens_the_access_log_and_captured_output_follows_the_error_log(tmp_path):
    access, error = tmp_path / "access.log", tmp_path / "error.log"
    srv = Server(["--bind", "127.0.0.1:0", "--access-logfile", str(access), "--access-logformat", "%(r)s",
                  "--error-logfile", str(error), "--capture-output", "basic:application"], APPS, expect_fail=True)
    try:
        deadline = time.monotonic() + 20
        while not (error.exists() and " ready" in error.read_text()):
            assert time.monotonic() < deadline and srv.proc.poll() is None, srv.log
            time.sleep(0.05)
        port = int(re.search(r"Listening at: http://127.0.0.1:(\d+)", error.read_text()).group(1))
        assert requests.get(f"http://127.0.0.1:{port}/print-stdout?before", timeout=10).text == "printed"
        assert wait_lines(access, 1) == ["GET /print-stdout?before HTTP/1.1"]
        (worker,) = srv.worker_pids()
        access.rename(tmp_path / "access.log.1")
        error.rename(tmp_path / "error.log.1")
        srv.proc.send_signal(signal.SIGUSR1)
        while not (error.exists() and f"Worker {worker} reopened the log file" in error.read_text()):
            assert time.monotonic() < deadline, (tmp_path / "error.log.1").read_text()
            time.sleep(0.05)
        assert requests.get(f"http://127.0.0.1:{port}/print-stdout?after", timeout=10).text == "printed"
        assert wait_lines(access, 1) == ["GET /print-stdout?after HTTP/1.1"]
        assert (tmp_path / "access.log.1").read_text() == "GET /print-stdout?before HTTP/1.1\n"
        while "stdout says after" not in error.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "stdout says before" in (tmp_path / "error.log.1").read_text()
        assert srv.log == ""  # nothing went to the terminal: stdout and stderr both followed the file
    finally:
        rc = srv.stop()
    assert rc == 0


def test_json_error_log_lines(serve):
    srv = serve("--log-format", "json", "basic:application")
    requests.get(srv.url("/raise"), timeout=10)  # a traceback: one JSON object, however many lines
    srv.wait_for(r'"message": ?"Worker \d+ ready"|"message":"Worker \d+ ready"')
    srv.wait_for("boom before start_response")
    parsed = [json.loads(line) for line in srv.lines if line.strip()]
    assert all(set(p) == {"time", "pid", "level", "message"} for p in parsed), parsed
    assert any(p["message"].startswith("Listening at: http://127.0.0.1:") for p in parsed)  # the Python side
    tb = [p for p in parsed if "Traceback" in p["message"]]
    assert tb and tb[0]["level"] == "ERROR" and "ValueError: boom before start_response" in tb[0]["message"]


@pytest.mark.parametrize("kind", ["udp", "unix"])
def test_log_syslog_sends_every_line(serve, tmp_path, kind):
    if kind == "udp":
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        address = f"udp://127.0.0.1:{sink.getsockname()[1]}"
    else:
        sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sink.bind(str(tmp_path / "log.sock"))
        address = f"unix:{tmp_path / 'log.sock'}"
    sink.settimeout(10)
    with sink:
        srv = serve("--log-syslog", "--log-syslog-to", address, "basic:application")
        srv.wait_workers_ready()
        seen: list[str] = []
        while not any("ready" in d for d in seen) or not any("Listening at" in d for d in seen):
            seen.append(sink.recv(65536).decode())
    worker = srv.worker_pids()[0]
    assert f"<14>fulmen: [{worker}] [INFO] Worker {worker} ready" in seen, seen  # user.info, from the core
    assert any(d.startswith("<14>fulmen: [") and "[INFO] Listening at: http://127.0.0.1:" in d for d in seen), seen
    assert any("Listening at" in line for line in srv.lines)  # stderr still has everything
