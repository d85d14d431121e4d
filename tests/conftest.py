"""Fixtures that run the real server in a subprocess and talk to it over real sockets.

The server is started with ``--bind 127.0.0.1:0``; the fixture reads the port the kernel
chose from the server's own "Listening at:" line (no port-picking race, no sleeps), and
every test ends by checking the server's log for sanitizer reports and crashes.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
LISTEN_RE = re.compile(r"Listening at: (http://\[?([^\]\s]+?)\]?:(\d+)|unix:(\S+))")
# Sanitizer reports, and workers killed by a crash signal (ILL, ABRT, BUS, FPE, SEGV).
BAD_LOG = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|Segmentation fault|killed by signal (4|6|7|8|11)\b")


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a process that loads fulmen._core (the sanitizer runtime goes first)."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    if os.environ.get("FULMEN_SANITIZER_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["FULMEN_SANITIZER_PRELOAD"]
    return env


class Server:
    """A running fulmen process (master and workers)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None, expect_fail: bool = False,
                 nofile: int | None = None, new_session: bool = False):
        # No empty entry: it would mean the current directory, where a file such as
        # examples/site.py would shadow the standard module (Python 3.10's site is not frozen).
        path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
        full_env = server_env({"PYTHONPATH": path,
                               **(env or {})})
        self.args = args
        self.expect_fail = expect_fail
        self.allowed_rc: set[int] = {0, -signal.SIGTERM}
        def limit() -> None:
            if nofile is not None:
                import resource

                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fulmen", *args],
            preexec_fn=limit if nofile is not None else None,
            # Its own session and process group, for tests that signal the whole group.
            start_new_session=new_session,
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.host = "127.0.0.1"
        self.port = 0
        self.unix_path: str | None = None
        if not expect_fail:
            m = self.wait_for(LISTEN_RE)
            if m.group(4):
                self.unix_path = m.group(4)
            else:
                self.host, self.port = m.group(2), int(m.group(3))
            self.wait_workers_ready()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float = 20.0, start: int = 0) -> re.Match[str]:
        """Waits until a log line matches; fails with the log if the server dies or time runs out."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"server exited ({self.proc.returncode}) before {rx.pattern!r}:\n{self.log}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {rx.pattern!r}:\n{self.log}")
                self._cond.wait(min(left, 0.2))

    def wait_workers_ready(self, timeout: float = 20.0) -> None:
        """Waits until every worker has logged that its loop is running."""
        n = 1
        for i, a in enumerate(self.args):
            if a in ("-w", "--workers") and i + 1 < len(self.args):
                n = int(self.args[i + 1])
            elif a.startswith("--workers="):
                n = int(a.split("=", 1)[1])
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(" ready" in line for line in self.lines) < n:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"workers not ready:\n{self.log}")
                self._cond.wait(min(left, 0.2))
        # Each worker's descriptors once it serves: teardown expects exactly these again.
        self.baseline_fds = {pid: self.fd_count(pid) for pid in self.worker_pids()}
        self.baseline_sockets = {pid: self.socket_fds(pid) for pid in self.worker_pids()}

    @staticmethod
    def fd_count(pid: int) -> int:
        try:
            return len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return -1

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def connect(self, timeout: float = 10.0) -> socket.socket:
        if self.unix_path:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.unix_path)
            return s
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        return s

    def worker_pids(self) -> list[int]:
        """The master's live children, from /proc."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                pids.append(int(entry))
        return pids

    def socket_fds(self, pid: int) -> int:
        """How many sockets the process holds open."""
        n = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                        n += 1
                except OSError:
                    pass
        except OSError:
            pass
        return n

    def check_no_leaked_connections(self, timeout: float = 5.0) -> None:
        """Every worker holds exactly the master's sockets (the listeners): no connection left open.

        Clients of a finished test have closed their sockets; the server must notice and close
        its ends (a keep-alive connection closes when its client does).
        """
        if self.proc.poll() is not None:
            return
        deadline = time.monotonic() + timeout
        while True:
            listeners = self.socket_fds(self.proc.pid)
            pids = self.worker_pids()
            held = {pid: self.socket_fds(pid) for pid in pids}
            # Any descriptor (file, pipe, socket) beyond what the worker had when it became
            # ready is a leak; workers started later (restarts) have no baseline.
            base = getattr(self, "baseline_fds", {})
            fds = {pid: self.fd_count(pid) for pid in pids if pid in base}
            # Listening sockets: the master's, plus a worker's own ones (--reuse-port) it had at start.
            socks = getattr(self, "baseline_sockets", {})
            if all(n <= socks.get(p, listeners) for p, n in held.items()) and all(
                    n <= base[p] for p, n in fds.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"workers hold sockets beyond the {listeners} listeners: {held}, "
                                     f"descriptors {fds} vs {base} at start\n{self.log}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError(f"server did not stop on signal {sig}:\n{self.log}")
        self._reader.join(5)
        return rc

    def check_clean(self) -> None:
        bad = [line for line in self.lines if BAD_LOG.search(line)]
        assert not bad, "server log shows a crash or sanitizer report:\n" + self.log


class ServerPool:
    """Starts servers and, when the scope ends, stops them and checks their logs."""

    def __init__(self) -> None:
        self.servers: list[Server] = []

    def start(self, *args: str, cwd: Path = APPS, env: dict[str, str] | None = None,
              expect_fail: bool = False, nofile: int | None = None, new_session: bool = False) -> Server:
        has_bind = any(a in ("-b", "--bind") or a.startswith("--bind=") for a in args)
        full = list(args) if has_bind else ["--bind", "127.0.0.1:0", *args]
        srv = Server(full, cwd, env, expect_fail, nofile, new_session)
        self.servers.append(srv)
        return srv

    def finish(self) -> None:
        for srv in self.servers:
            workers = srv.worker_pids() if srv.proc.poll() is None else []
            try:
                if not srv.expect_fail:
                    srv.check_no_leaked_connections()
            finally:
                rc = srv.stop()  # a failed check must not leave the server running
            srv.check_clean()
            # No worker outlives its master (no orphans, no zombies left behind).
            for pid in workers:
                deadline = time.monotonic() + 5
                while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the master"
            if not srv.expect_fail:
                assert rc in srv.allowed_rc, f"server exit status {rc}:\n{srv.log}"


@pytest.fixture
def serve():
    """serve(*args, cwd=APPS, env=None) -> Server; stopped and checked at teardown."""
    pool = ServerPool()
    yield pool.start
    pool.finish()


@pytest.fixture(scope="module")
def serve_module():
    """Like serve, for a server shared by a whole test module."""
    pool = ServerPool()
    yield pool.start
    pool.finish()


_PENDING: "weakref.WeakKeyDictionary[socket.socket, bytearray]" = weakref.WeakKeyDictionary()


def read_response(sock: socket.socket, head_only: bool = False) -> tuple[int, dict[str, str], bytes, bytes]:
    """Reads one HTTP/1.x response from a raw socket (Content-Length, chunked or close-delimited).

    Returns (status, headers with lower-case names, body, leftover bytes). Bytes read past
    the response stay in _PENDING for the next call on the same socket (pipelining).
    """
    buf = _PENDING.setdefault(sock, bytearray())

    def fill() -> bool:
        data = sock.recv(65536)
        if not data:
            return False
        buf.extend(data)
        return True

    while b"\r\n\r\n" not in buf:
        if not fill():
            raise ConnectionError(f"connection closed before a full head: {bytes(buf)!r}")
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = (headers[key] + ", " + value.strip()) if key in headers else value.strip()
    body = b""
    if head_only or status < 200 or status in (204, 304):
        pass
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            if not fill():
                raise ConnectionError("connection closed inside the body")
        body, buf[:] = bytes(buf[:n]), buf[n:]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            while b"\r\n" not in buf:
                if not fill():
                    raise ConnectionError("connection closed inside a chunk size")
            line, _, rest = bytes(buf).partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            buf[:] = rest
            while len(buf) < size + 2:
                if not fill():
                    raise ConnectionError("connection closed inside a chunk")
            out.extend(buf[:size])
            assert buf[size : size + 2] == b"\r\n"
            buf[:] = buf[size + 2 :]
            if size == 0:
                break
        body = bytes(out)
    else:
        while fill():
            pass
        body, buf[:] = bytes(buf), bytearray()
    return status, headers, body, bytes(buf)


def recv_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Reads until the server closes the connection; fails if it does not."""
    sock.settimeout(timeout)
    data = bytearray(_PENDING.pop(sock, b""))
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data)
        data.extend(chunk)


def request(srv: Server, raw: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    with srv.connect() as s:
        s.sendall(raw)
        return read_response(s)


def raise_nofile(n: int) -> None:
    """Lets this test process open n descriptors, or skips the test where the hard limit forbids it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < n:
        pytest.skip(f"needs {n} file descriptors, hard limit is {hard}")
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def connect_burst(srv: Server, n: int, data: bytes, timeout: float = 30.0) -> list[socket.socket]:
    """Opens n connections at once (non-blocking connects), then sends data on each."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((srv.host, srv.port))
        socks.append(s)
    for s in socks:
        s.setblocking(True)
        s.settimeout(timeout)
        s.sendall(data)
    return socks
