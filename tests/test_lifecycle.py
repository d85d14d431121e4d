"""Process management (issue 8): reloads, graceful stops, recycling, timeouts,
signals, sd_notify and server hooks, on real processes with real signals and
real keep-alive clients under load."""

from __future__ import annotations

import errno
import http.client
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

from conftest import APPS, Server, read_response, recv_until_closed, server_env

APP = "lifecycle_app:application"


class Load:
    """Keep-alive clients (http.client) sending requests back to back until stopped.

    Every exception (a reset, a refused connect, RemoteDisconnected) and every
    status other than 200 is a failure; answered requests are counted, and the
    pids that answered /pid are collected.
    """

    def __init__(self, srv: Server, clients: int = 8, path: str = "/pid") -> None:
        self.srv = srv
        self.path = path
        self.ok = 0
        self.failures: list[str] = []
        self.pids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=15)
        ok, pids = 0, set()
        while not self._stop.is_set():
            try:
                conn.request("GET", self.path)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    raise AssertionError(f"status {resp.status}")
                ok += 1
                if self.path == "/pid":
                    pids.add(int(body))
            except Exception as error:  # every failure counts; the client reconnects
                with self._lock:
                    self.failures.append(repr(error))
                conn.close()
                conn = http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=15)
            if ok % 50 == 0:
                with self._lock:
                    self.ok += ok
                    self.pids |= pids
                ok, pids = 0, set()
        conn.close()
        with self._lock:
            self.ok += ok
            self.pids |= pids

    def wait_for_requests(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        start = self.count()
        while self.count() < start + n:
            assert time.monotonic() < deadline, f"load stalled at {self.count()}: {self.failures[:5]}"
            time.sleep(0.05)

    def count(self) -> int:
        with self._lock:
            return self.ok

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def serving_lines(srv: Server) -> int:
    return sum("Serving: " in line for line in srv.lines)


def wait_for_children(srv: Server, n: int, timeout: float = 20.0, exclude: set[int] = frozenset()) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        pids = srv.worker_pids()
        if len(pids) == n and not (set(pids) & exclude):
            return pids
        assert time.monotonic() < deadline, f"children {pids}, wanted {n} (not {exclude}):\n{srv.log}"
        time.sleep(0.02)


def reload_and_wait(srv: Server, workers: int) -> list[int]:
    """HUP; returns the new workers once the old ones are gone."""
    old = set(srv.worker_pids())
    before = serving_lines(srv)
    mark = len(srv.lines)
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_for("Hang-up: reloading", start=mark)
    deadline = time.monotonic() + 30
    while serving_lines(srv) <= before:
        assert time.monotonic() < deadline, srv.log
        time.sleep(0.02)
    return wait_for_children(srv, workers, exclude=old)


def get(srv: Server, path: str) -> tuple[int, dict[str, str], bytes]:
    with srv.connect() as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        status, headers, body, _ = read_response(s)
    return status, headers, body


# ---- 2: HUP reloads under load, loses nothing --------------------------------


def test_hup_under_keepalive_load_loses_no_request(serve):
    srv = serve("-w", "2", APP)
    load = Load(srv, clients=8)
    try:
        load.wait_for_requests(200)
        generations = [set(srv.worker_pids())]
        for _ in range(3):
            generations.append(set(reload_and_wait(srv, 2)))
            load.wait_for_requests(200)  # the new workers serve
    finally:
        load.stop()
    assert load.failures == [], f"{len(load.failures)} of {load.ok} requests failed: {load.failures[:5]}"
    # Each HUP replaced both workers, and every generation answered requests.
    for a, b in zip(generations, generations[1:]):
        assert not a & b
    assert all(gen & load.pids for gen in generations[1:])
    print(f"HUP x3 under load: {load.ok} requests, {len(load.failures)} failed")


def _write_app(path: Path, text: str) -> None:
    path.write_text(text)


def test_hup_with_broken_code_keeps_the_old_workers_serving(serve, tmp_path):
    app = tmp_path / "versioned.py"
    good = "def application(e, r):\n    r('200 OK', [('Content-Length', '2')])\n    return [b'%s']\n"
    _write_app(app, good % "v1")
    srv = serve("-w", "2", "versioned:application", cwd=tmp_path, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert get(srv, "/")[2] == b"v1"
    old = set(srv.worker_pids())

    _write_app(app, "raise RuntimeError('half-deployed')\n")
    mark = len(srv.lines)
    load = Load(srv, clients=4, path="/")
    try:
        load.wait_for_requests(50)
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_for("failed to load the application; the running workers keep serving", start=mark)
        load.wait_for_requests(100)
    finally:
        load.stop()
    assert load.failures == []
    text = "\n".join(srv.lines[mark:])
    assert text.count("Traceback (most recent call last):") == 1
    assert "RuntimeError: half-deployed" in text
    assert set(srv.worker_pids()) == old and get(srv, "/")[2] == b"v1"

    _write_app(app, good % "v3")
    new = reload_and_wait(srv, 2)
    assert not set(new) & old
    assert get(srv, "/")[2] == b"v3"


def test_hup_rereads_the_config_file_and_ignores_restart_only_settings(serve, tmp_path):
    conf = tmp_path / "conf.py"
    # (The fixture gives --bind on the command line, which wins over the file:
    # backlog is the restart-only setting that changes here.)
    conf.write_text("backlog = 100\nworkers = 1\nmax_requests = 0\n")
    srv = serve("-c", str(conf), APP)
    (first,) = srv.worker_pids()
    conf.write_text("backlog = 200\nworkers = 2\nmax_requests = 5\n")
    mark = len(srv.lines)
    new = reload_and_wait(srv, 2)
    assert first not in new
    srv.wait_for("Reload: backlog cannot change without a restart; ignoring its new value", start=mark)
    assert get(srv, "/")[0] == 200
    for _ in range(12):  # max_requests = 5 applies to the new workers
        get(srv, "/")
    srv.wait_for("reached max_requests; replacing it", start=mark)

    # A config file that fails now: logged with its traceback; nothing changes.
    conf.write_text("workers = 3\nraise RuntimeError('typo in the config')\n")
    mark = len(srv.lines)
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_for("Reload: .*failed to execute the config file: RuntimeError: typo in the config; "
                 "keeping the settings in use", start=mark)
    srv.wait_for("Reload abandoned", start=mark)
    assert "Traceback" in "\n".join(srv.lines[mark:])
    assert get(srv, "/")[0] == 200
    wait_for_children(srv, 2)  # still 2 (a max_requests replacement may be under way)
    assert "Serving: 3 workers up" not in srv.log


# ---- worker death, TERM, INT ------------------------------------------------------


def test_kill_9_of_one_of_two_workers(serve):
    srv = serve("-w", "2", APP)
    victim, survivor = srv.worker_pids()
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    # The other worker keeps serving new connections meanwhile.
    for _ in range(20):
        assert get(srv, "/")[0] == 200
    pids = wait_for_children(srv, 2, exclude={victim}, timeout=5)
    srv.wait_for(f"Worker {victim} was killed by signal 9")
    replaced_in = time.monotonic() - killed_at
    assert survivor in pids
    assert replaced_in < 1.0 + 0.5, f"replaced after {replaced_in:.2f} s"  # 0.5 s for this test's own requests


def test_term_finishes_the_request_in_flight_with_connection_close(serve):
    srv = serve(APP)
    idle = srv.connect()
    idle.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert read_response(idle)[0] == 200  # now an idle keep-alive connection
    busy = srv.connect()
    mark = len(srv.lines)
    busy.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: a\r\n\r\n")
    srv.wait_for("in the application: sleeping", start=mark)
    srv.proc.send_signal(signal.SIGTERM)
    status, headers, body, _ = read_response(busy)
    assert (status, body) == (200, b"slept")
    assert headers.get("connection") == "close"
    assert recv_until_closed(busy) == b""
    assert recv_until_closed(idle) == b""  # the idle one was closed, not left to the keep-alive timeout
    assert srv.proc.wait(10) == 0
    srv.wait_for("Shutting down: master")


def test_term_does_not_wait_for_idle_keepalive_connections(serve):
    srv = serve("--keepalive-timeout", "60", APP)
    conns = []
    for _ in range(5):
        s = srv.connect()
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(s)[0] == 200
        conns.append(s)
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0
    assert time.monotonic() - start < 5  # idle connections close at once (< 1 s idle: after 1 s)
    for s in conns:
        assert recv_until_closed(s) == b""


def test_retiring_worker_stuck_in_the_app_is_killed_after_graceful_timeout(serve):
    srv = serve("--graceful-timeout", "1", APP)
    (first,) = srv.worker_pids()
    s = srv.connect()
    mark = len(srv.lines)
    s.sendall(b"GET /hang HTTP/1.1\r\nHost: a\r\n\r\n")
    srv.wait_for("in the application: hanging", start=mark)
    reload_and_wait(srv, 1)  # returns once the stuck worker is gone
    # The state follows the process title, which may hold spaces ("(fulmen: worker [app])").
    stat = Path(f"/proc/{first}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    srv.wait_for(f"Worker {first} was still busy after the graceful timeout; killed")
    assert recv_until_closed(s) == b""
    s.close()


# ---- 5: timeout, max_requests -----------------------------------------------------


def test_timeout_logs_the_stack_then_replaces_the_worker(serve, tmp_path):
    conf = tmp_path / "conf.py"
    marker = tmp_path / "aborted"
    conf.write_text(f"def worker_abort(worker):\n    open({str(marker)!r}, 'w').write(str(worker.pid))\n")
    srv = serve("-t", "2", "-c", str(conf), APP)
    (first,) = srv.worker_pids()
    s = srv.connect()
    mark = len(srv.lines)
    s.sendall(b"GET /hang HTTP/1.1\r\nHost: a\r\n\r\n")
    srv.wait_for("in the application: hanging", start=mark)
    notice = srv.wait_for(rf"WORKER TIMEOUT: worker {first} did not come back", start=mark, timeout=15)
    lines = srv.lines[mark:]
    at = next(i for i, line in enumerate(lines) if notice.group(0) in line)
    before = "\n".join(lines[:at])
    # Where it was stuck, from the worker, before the master's notice.
    assert "the stack of each of its threads" in before
    assert re.search(r'File ".*lifecycle_app\.py", line \d+ in _stuck_for_good', before), before
    assert re.search(r'File ".*lifecycle_app\.py", line \d+ in application', before)
    assert marker.read_text() == str(first)
    assert recv_until_closed(s) == b""
    (second,) = wait_for_children(srv, 1, exclude={first})
    srv.wait_for(f"Worker {second} ready")
    srv.wait_workers_ready()  # the teardown's descriptor baseline, for the new worker once it serves
    assert get(srv, "/")[0] == 200


def test_idle_workers_are_not_timed_out(serve):
    srv = serve("-t", "2", "-w", "2", APP)
    pids = set(srv.worker_pids())
    # Idle loops wake once a second and stamp their heartbeat: nothing is killed.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert get(srv, "/sleep?0.5")[0] == 200  # the app may run (< timeout) without a kill
        time.sleep(0.2)
    assert set(srv.worker_pids()) == pids
    assert "WORKER TIMEOUT" not in srv.log


def test_max_requests_recycles_workers_without_failures(serve):
    srv = serve("-w", "2", "--max-requests", "40", "--max-requests-jitter", "10", APP)
    first = set(srv.worker_pids())
    load = Load(srv, clients=6)
    try:
        deadline = time.monotonic() + 60
        while srv.log.count("reached max_requests; replacing it") < 6:
            assert time.monotonic() < deadline, srv.log
            time.sleep(0.05)
        load.wait_for_requests(100)
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]
    assert len(load.pids) >= 6  # several generations of workers answered
    assert not first & set(srv.worker_pids())
    wait_for_children(srv, 2)


# ---- 4: TTIN/TTOU, USR1, USR2/WINCH, other signals ----------------------------------


def test_ttin_ttou_and_signals_without_default_actions(serve):
    srv = serve(APP)
    master = srv.proc.pid
    for n in (2, 3):
        os.kill(master, signal.SIGTTIN)
        wait_for_children(srv, n)
    os.kill(master, signal.SIGTTOU)
    wait_for_children(srv, 2)
    # Signals an operator may send, that would stop, suspend or kill by default:
    # logged and ignored, by the master and by the workers (a process group).
    for sig in (signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGPWR, signal.SIGRTMIN + 5):
        mark = len(srv.lines)
        os.kill(master, sig)
        srv.wait_for(rf"Ignoring signal {int(sig)}", start=mark)
    pids = srv.worker_pids()
    for sig in (signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH, signal.SIGUSR2, signal.SIGHUP):
        for pid in pids:
            os.kill(pid, sig)
    for _ in range(10):
        assert get(srv, "/")[0] == 200
    state = Path(f"/proc/{master}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert state in ("S", "R")  # not stopped (T)
    assert sorted(srv.worker_pids()) == sorted(pids)


def test_a_worker_still_importing_the_app_survives_operator_signals(serve, tmp_path):
    """HUP, USR1, USR2, TTIN, TTOU and WINCH reaching a worker before it has its
    handlers (still importing the app, e.g. from `kill -SIG -PGID`) stay pending
    instead of ending (HUP, USR1, USR2) or stopping (TTIN, TTOU) it."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    srv = serve(APP, env={"LIFECYCLE_BOOT_GATE": str(gate)})
    (first,) = srv.worker_pids()
    (tmp_path / "gate.armed").touch()
    os.kill(srv.proc.pid, signal.SIGTTIN)
    (booting,) = set(wait_for_children(srv, 2)) - {first}
    deadline = time.monotonic() + 20
    while True:  # the new worker is in the import once it has the FIFO open for reading
        try:
            writer = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as error:
            assert error.errno == errno.ENXIO and time.monotonic() < deadline, error
            time.sleep(0.02)
    mark = len(srv.lines)
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH):
        os.kill(booting, sig)
    os.close(writer)  # end of file: the import finishes
    srv.wait_for(rf"Worker {booting} ready", start=mark)
    state = Path(f"/proc/{booting}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert state in ("S", "R")  # not stopped (T)
    assert sorted(srv.worker_pids()) == sorted([first, booting])
    assert not any("exited" in line or "Booting worker" in line for line in srv.lines[mark:]), srv.log
    for _ in range(10):
        assert get(srv, "/")[0] == 200


def test_usr1_reopens_the_log_file_after_it_was_moved(tmp_path):
    log = tmp_path / "error.log"
    srv = Server(["--bind", "127.0.0.1:0", "--log-file", str(log), APP], APPS, expect_fail=True)
    try:
        deadline = time.monotonic() + 20
        while not (log.exists() and "Serving: 1 worker up" in log.read_text()):
            assert time.monotonic() < deadline and srv.proc.poll() is None, srv.log
            time.sleep(0.05)
        srv.port = int(re.search(r"Listening at: http://127.0.0.1:(\d+)", log.read_text()).group(1))
        assert get(srv, "/log?before")[2] == b"logged"
        (worker,) = srv.worker_pids()
        log.rename(tmp_path / "error.log.1")
        srv.proc.send_signal(signal.SIGUSR1)
        while not (log.exists() and f"Worker {worker} reopened the log file" in log.read_text()):
            assert time.monotonic() < deadline, (tmp_path / "error.log.1").read_text()
            time.sleep(0.05)
        assert get(srv, "/log?after")[2] == b"logged"
        while "app says after" not in log.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        old = (tmp_path / "error.log.1").read_text()
        assert "app says before" in old and "app says after" not in old
        assert "Listening at:" not in log.read_text()
        assert srv.log == ""  # nothing went to stderr
    finally:
        rc = srv.stop()
    assert rc == 0


def test_usr2_starts_a_new_master_and_winch_stops_the_old_workers(serve, tmp_path):
    conf = tmp_path / "conf.py"
    marker = tmp_path / "pre_exec"
    conf.write_text(f"def pre_exec(server):\n    open({str(marker)!r}, 'a').write('pre_exec %d\\n' % server.pid)\n")
    pidfile = tmp_path / "fulmen.pid"
    srv = serve("-w", "2", "-c", str(conf), "--pidfile", str(pidfile), APP)
    old_master = srv.proc.pid
    old_workers = set(srv.worker_pids())
    assert pidfile.read_text() == f"{old_master}\n"
    mark = len(srv.lines)
    srv.proc.send_signal(signal.SIGUSR2)
    new_master = int(srv.wait_for(r"Started a new master, pid (\d+)", start=mark).group(1))
    try:
        # The new master serves on the very same socket.
        srv.wait_for(rf"\[{new_master}\] \[INFO\] Listening at: http://127.0.0.1:{srv.port} ", start=mark)
        deadline = time.monotonic() + 20
        while sum(f"[{new_master}] [INFO] Serving: 2 workers up" in line for line in srv.lines) < 1:
            assert time.monotonic() < deadline, srv.log
            time.sleep(0.05)
        assert marker.read_text() == f"pre_exec {old_master}\n"
        # gunicorn's binary upgrade: the old pid file is PIDFILE.oldbin, the new master writes PIDFILE.
        assert Path(f"{pidfile}.oldbin").read_text() == f"{old_master}\n"
        assert pidfile.read_text() == f"{new_master}\n"
        load = Load(srv, clients=4)
        try:
            load.wait_for_requests(100)
            srv.proc.send_signal(signal.SIGWINCH)
            srv.wait_for("WINCH: stopping the workers gracefully", start=mark)
            deadline = time.monotonic() + 20
            while set(srv.worker_pids()) & old_workers:
                assert time.monotonic() < deadline, srv.log
                time.sleep(0.05)
            load.wait_for_requests(100)
        finally:
            load.stop()
        assert load.failures == [], load.failures[:5]
        # Every answer now comes from a worker of the new master.
        for _ in range(10):
            pid = int(get(srv, "/pid")[2])
            assert pid not in old_workers
            assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == new_master
        # The old master exits; the new one keeps serving.
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(15) == 0
        assert get(srv, "/")[0] == 200
        assert not Path(f"{pidfile}.oldbin").exists() and pidfile.read_text() == f"{new_master}\n"
    finally:
        os.kill(new_master, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while Path(f"/proc/{new_master}").exists():
            assert time.monotonic() < deadline, "the new master did not stop"
            time.sleep(0.05)
    assert not pidfile.exists()


# ---- 6: --reload ---------------------------------------------------------------------


def test_reload_on_a_source_change_and_on_an_extra_file(serve, tmp_path):
    app = tmp_path / "edited.py"
    extra = tmp_path / "settings.toml"
    extra.write_text("a = 1\n")
    code = "def application(e, r):\n    r('200 OK', [('Content-Length', '2')])\n    return [b'%s']\n"
    app.write_text(code % "e1")
    srv = serve("--reload", "--reload-extra-file", str(extra), "-w", "2", "edited:application", cwd=tmp_path,
                env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert get(srv, "/")[2] == b"e1"
    old = set(srv.worker_pids())
    mark = len(srv.lines)
    load = Load(srv, clients=4, path="/")
    try:
        load.wait_for_requests(50)
        tmp = tmp_path / "edited.py.tmp"  # as an editor saves: a new file renamed over the old one
        tmp.write_text(code % "e2")
        tmp.rename(app)
        srv.wait_for(rf"reload: {re.escape(str(app))} changed", start=mark)
        new = wait_for_children(srv, 2, exclude=old)
        load.wait_for_requests(50)
    finally:
        load.stop()
    assert load.failures == []
    assert get(srv, "/")[2] == b"e2"
    # The changed file was reported once per change, not once per worker.
    assert sum("Hang-up: reloading" in line for line in srv.lines[mark:]) == 1
    mark = len(srv.lines)
    with extra.open("a") as f:
        f.write("b = 2\n")
    srv.wait_for(rf"reload: {re.escape(str(extra))} changed", start=mark)
    wait_for_children(srv, 2, exclude=set(new))


# ---- 7: sd_notify --------------------------------------------------------------------


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_ready_reloading_stopping(serve, tmp_path, abstract):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"fulmen-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name)
        address = "@" + name
    else:
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    sock.settimeout(20)
    with sock:
        srv = serve("-w", "2", APP, env={"NOTIFY_SOCKET": address})
        ready = sock.recv(4096).decode()
        assert "READY=1" in ready and f"MAINPID={srv.proc.pid}" in ready
        srv.proc.send_signal(signal.SIGHUP)
        reloading = sock.recv(4096).decode()
        assert reloading.startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert "READY=1" in sock.recv(4096).decode()
        srv.proc.send_signal(signal.SIGTERM)
        assert sock.recv(4096).decode() == "STOPPING=1"
        assert srv.proc.wait(15) == 0


# ---- 8: hooks ---------------------------------------------------------------------------


HOOKS_CONF = '''
import os
OUT = {out!r}

def note(*words):
    with open(OUT, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\\n")

def on_starting(server): note("on_starting", server.pid == os.getpid(), server.cfg.workers)
def when_ready(server): note("when_ready", server.pid)
def pre_fork(server, worker): note("pre_fork", worker.pid, worker.age)
def post_fork(server, worker): note("post_fork", worker.pid == os.getpid(), worker.age)
def post_worker_init(worker): note("post_worker_init", worker.pid == os.getpid())
def worker_int(worker): note("worker_int", worker.pid)
def worker_abort(worker): note("worker_abort", worker.pid)
def pre_exec(server): note("pre_exec")
def pre_request(worker, req): note("pre_request", req.method, req.path, req.query)
def post_request(worker, req, environ, resp): note("post_request", req.path, resp.status, environ["PATH_INFO"])
def child_exit(server, worker): note("child_exit", worker.pid)
def worker_exit(server, worker): note("worker_exit", worker.pid == os.getpid())
def nworkers_changed(server, new_value, old_value): note("nworkers_changed", new_value, old_value)
def on_exit(server): note("on_exit", server.pid == os.getpid())
def on_reload(server): note("on_reload", server.cfg.workers)
'''


def test_every_hook_fires(serve, tmp_path):
    out = tmp_path / "hooks.txt"
    conf = tmp_path / "conf.py"
    conf.write_text(HOOKS_CONF.format(out=str(out)))
    srv = serve("-c", str(conf), APP)
    (first,) = srv.worker_pids()
    assert get(srv, "/pid?x=1")[2] == str(first).encode()
    srv.proc.send_signal(signal.SIGTTIN)
    second = [p for p in wait_for_children(srv, 2) if p != first][0]
    srv.wait_for(f"Worker {second} ready")
    os.kill(second, signal.SIGINT)  # worker_int, then it stops at once and is replaced
    wait_for_children(srv, 2, exclude={second})
    reload_and_wait(srv, 1)  # the settings say 1 worker again: back from 2
    assert srv.stop() == 0
    lines = out.read_text().splitlines()
    master = srv.proc.pid
    expected = [
        "on_starting True 1",
        f"when_ready {master}",
        "pre_fork None 1",
        "post_fork True 1",
        "post_worker_init True",
        "pre_request GET /pid x=1",
        "post_request /pid 200 OK /pid",
        "nworkers_changed 2 1",
        f"worker_int {second}",
        f"child_exit {second}",
        "on_reload 1",
        "nworkers_changed 1 2",
        "worker_exit True",
        "on_exit True",
    ]
    for line in expected:
        assert line in lines, f"{line!r} not in {lines}"
    assert lines[0] == "on_starting True 1" and lines[-1] == "on_exit True"
    assert lines.index(f"when_ready {master}") < lines.index("pre_fork None 1") < lines.index("post_fork True 1")


# ---- bad values: one line, exit 2 -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "conf", "expected"),
    [
        (["--max-requests", "-1"], {}, None, "--max-requests: expected an integer >= 0, got '-1'"),
        (["--max-requests", "x"], {}, None, "--max-requests: expected an integer >= 0, got 'x'"),
        (["--max-requests-jitter", "1.5"], {}, None, "--max-requests-jitter: expected an integer >= 0"),
        (["-t", "1"], {}, None, "--timeout: expected 0 or a number of seconds >= 2, got '1'"),
        (["--timeout", "soon"], {}, None, "--timeout: expected 0 or a number of seconds >= 2, got 'soon'"),
        (["--timeout", "-3"], {}, None, "--timeout: expected 0 or a number of seconds >= 2"),
        (["--error-logfile", "/no/such/dir/log"], {}, None, "--error-logfile: no such directory '/no/such/dir'"),
        (["--log-file", "/"], {}, None, "--error-logfile: '/' is a directory"),
        (["--reload-extra-file", "/no/such/file"], {}, None, "--reload-extra-file: no such file '/no/such/file'"),
        ([], {"FULMEN_MAX_REQUESTS": "many"}, None, "FULMEN_MAX_REQUESTS: expected an integer >= 0, got 'many'"),
        ([], {"FULMEN_PRELOAD_APP": "maybe"}, None, "FULMEN_PRELOAD_APP: expected a boolean"),
        ([], {}, "preload_app = 'maybe'", "conf.py: preload_app: expected a boolean"),
        ([], {}, "timeout = 0.5", "conf.py: timeout: expected 0 or a number of seconds >= 2, got 0.5"),
        ([], {}, "on_starting = 3", "conf.py: on_starting: expected a callable taking 1 argument (server), got 3"),
        ([], {}, "def pre_request(worker):\n    pass\n",
         "conf.py: pre_request: expected a callable taking 2 arguments (worker, req), got <function"),
        ([], {}, "post_request = lambda w, r: None",
         "conf.py: post_request: expected a callable taking 4 arguments"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(tmp_path, args, env, conf, expected):
    if conf is not None:
        (tmp_path / "conf.py").write_text(conf)
        args = [*args, "-c", "conf.py"]
    result = subprocess.run(
        [sys.executable, "-m", "fulmen", *args, APP], cwd=tmp_path, env=server_env({"PYTHONPATH": str(APPS), **env}),
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"fulmen: error: {expected}"), lines[0]
