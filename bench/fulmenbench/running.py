"""Running: one server's process group, started for one case, probed, stopped."""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .cgroup import CpuGroup
from .common import APPS, DATA, HELLO, HOST, VENV, tail
from .load import pin
from .scenarios import Case
from .servers import Launch, Server


class ServerFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Running:
    """One server process group, started for one case."""

    def __init__(self, server: Server, case: Case, args: argparse.Namespace) -> None:
        self.server = server
        self.case = case
        self.tmp = Path(tempfile.mkdtemp(prefix=f"fulmen-bench-{server.name}-"))
        self.port = free_port()
        launch = Launch(self.port, case.app, case, self.tmp, VENV / "bin")
        self.argv = [*pin(args, args.server_cpu), *server.command(launch)]
        self.cgroup = CpuGroup.create(self.tmp.name) if args.cgroup else None
        self.log_path = self.tmp / "server.log"
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", BENCH_DATA=str(DATA))
        env.pop("PYTHONPATH", None)
        argv = self.cgroup.wrap(self.argv) if self.cgroup else self.argv
        self.proc = subprocess.Popen(
            argv,
            cwd=APPS,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self.pgid = self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return tail(self.log_path.read_text(errors="replace"), lines)
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll connect() until the port accepts, then check one real response."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerFailed(f"exited with status {self.proc.returncode} before listening")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ServerFailed(f"port {self.port} not accepting after {timeout:.0f}s") from None
                time.sleep(0.02)
        self.probe(deadline + 15)

    def probe(self, deadline: float) -> None:
        """One request of the case: status 200 and the body its scenario expects, or ServerFailed/ValueError."""
        case = self.case
        while True:
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
                conn.request(case.method, case.path, body=case.body, headers=dict(case.probe_headers))
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                break
            except (OSError, http.client.HTTPException) as error:
                # A listening master may not have a worker yet: retry until the deadline.
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise ServerFailed(f"probe {case.method} {case.path} failed: {error!r}") from None
                time.sleep(0.05)
        if resp.status != 200:
            raise ServerFailed(f"probe {case.method} {case.path}: status {resp.status}, body {data[:80]!r}")
        expected = self.server.expected_hello if case.expect == HELLO else case.expect
        if expected is not None and data != expected:
            raise ServerFailed(f"probe {case.method} {case.path}: unexpected body {data[:80]!r} ({len(data)} bytes)")
        if case.check is not None:
            case.check(data)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL what is left after 3 s."""
        try:
            os.killpg(self.pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()

    def cleanup(self) -> None:
        if self.cgroup:
            self.cgroup.remove()
        shutil.rmtree(self.tmp, ignore_errors=True)
