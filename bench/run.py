#!/usr/bin/env python3
"""fulmen's benchmark pipeline: one command, all servers, all scenarios.

    python bench/run.py                        # every server, every scenario but ab
    python bench/run.py --quick                # smoke run: every server starts and answers
    python bench/run.py --servers fulmen,nginx-static --scenarios hello,pipeline
    python bench/run.py --scenarios ab --servers fulmen,nginx-static
    python bench/run.py --list                 # servers and scenarios

Works with any Python >= 3.10. It creates its own virtual environment,
bench/.venv, installs the peers from PyPI (each on its own, so that one that
fails to build is reported and the rest still run) and fulmen from this
repository, then re-runs itself inside it. The method, what each number means
and the caveats are in bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
BUILD = BENCH / ".build"
DATA = BENCH / ".data"
APPS = BENCH / "apps"
WRK_DIR = BENCH / "wrk"
INSTALL_STATE = VENV / "bench-install.json"
IN_VENV_FLAG = "FULMEN_BENCH_IN_VENV"

HOST = "127.0.0.1"
HELLO = b"Hello, World!"
SCRIPT_HELLO = b"hello world!"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ==========================================================================
# Peers (what pip installs into bench/.venv)
# ==========================================================================


@dataclass(frozen=True)
class Peer:
    name: str  # the distribution name (pip install NAME)
    hint: str = ""  # shown when it fails to install
    alternative: str | None = None  # tried when this one fails


PEERS = [
    Peer("gunicorn"),
    Peer("granian"),
    Peer("bjoern", hint="bjoern builds against libev: apt-get install libev-dev"),
    Peer("fastpysgi", alternative="fastwsgi"),
    Peer("waitress"),
    Peer("uwsgi", hint="uWSGI compiles from source: needs cc and the Python headers"),
    Peer("flask"),
    Peer("whitenoise"),
    Peer("matplotlib", hint="needed for the PNG plots only"),
]


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def source_hash() -> str:
    """A hash of what a fulmen build is made of: reinstall when it changes."""
    digest = hashlib.sha256()
    roots = [REPO / "src", REPO / "python", REPO / "CMakeLists.txt", REPO / "pyproject.toml"]
    for root in roots:
        paths = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in paths:
            if "__pycache__" in path.parts or not path.exists():
                continue
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def setup_venv(args: argparse.Namespace) -> dict[str, Any]:
    """Create bench/.venv, install the peers and fulmen; return the install report."""
    python = VENV / "bin" / "python"
    if args.recreate_venv and VENV.exists():
        shutil.rmtree(VENV)
    if not python.exists():
        print(f"bench: creating {VENV.relative_to(REPO)} with {sys.executable} ({platform.python_version()})")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=False)
    state: dict[str, Any] = json.loads(INSTALL_STATE.read_text()) if INSTALL_STATE.exists() else {}
    installed = installed_versions(python)

    def pip_install(*spec: str) -> tuple[bool, str]:
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", *spec],
            capture_output=True,
            text=True,
        )
        return proc.returncode == 0, proc.stdout + proc.stderr

    for peer in PEERS:
        names = [peer.name] + ([peer.alternative] if peer.alternative else [])
        if any(n in installed for n in names):
            continue
        record = state.get(peer.name)
        if record and not record["ok"] and not args.reinstall:
            continue  # failed before: reported from the cache; --reinstall tries again
        errors = []
        for name in names:
            print(f"bench: pip install {name} ...", flush=True)
            ok, output = pip_install(name)
            if ok:
                break
            errors.append(f"{name}: {tail(output, 15)}")
            print(f"bench: {name} failed to install" + (f" ({peer.hint})" if peer.hint else ""), flush=True)
        state[peer.name] = {
            "ok": ok,
            "error": None if ok else "\n\n".join(errors),
            "hint": peer.hint,
            "when": _dt.datetime.now().isoformat(timespec="seconds"),
        }

    digest = source_hash()
    record = state.get("fulmen") or {}
    if args.reinstall or record.get("source_hash") != digest or "fulmen" not in installed:
        print(f"bench: building and installing fulmen from {REPO} (source {digest}) ...", flush=True)
        ok, output = pip_install(
            "--force-reinstall",
            "--no-deps",
            # A build folder of its own, not the repo's build/, which others use.
            "--config-settings=build-dir=" + str(BUILD / "fulmen-{wheel_tag}"),
            str(REPO),
        )
        state["fulmen"] = {
            "ok": ok,
            "source_hash": digest if ok else None,
            "error": None if ok else tail(output, 30),
            "hint": "fulmen needs libuv (apt-get install libuv1-dev pkg-config) and cmake",
            "when": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        if not ok:
            print("bench: fulmen failed to build:\n" + tail(output, 30), flush=True)
    INSTALL_STATE.write_text(json.dumps(state, indent=2))
    return state


def installed_versions(python: Path | str) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
    )
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


# ==========================================================================
# Servers
# ==========================================================================

WSGI_SCENARIOS = {"hello", "hello-nocl", "10k", "echo", "json", "flask", "file", "pipeline", "close", "sweep", "ab"}
HELLO_SCENARIOS = {"hello", "pipeline", "close", "sweep", "ab"}


@dataclass
class Launch:
    """What starting one server for one case needs."""

    port: int
    app: str  # "wsgi_app" or "flask_app"
    case: Case
    tmp: Path
    bin: Path  # the bench venv's bin/


@dataclass(frozen=True)
class Server:
    name: str
    needs: str | None  # the peer (or "fulmen", "nginx", "cc") it needs
    scenarios: frozenset[str]
    command: Callable[[Launch], list[str]]
    describe: str
    expected_hello: bytes = HELLO


def _target(l: Launch) -> str:
    return f"{l.app}:application"


def _gunicorn(*extra: str) -> Callable[[Launch], list[str]]:
    return lambda l: [
        str(l.bin / "gunicorn"),
        "-b",
        f"{HOST}:{l.port}",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
        *extra,
        _target(l),
    ]


def _fulmen(
    executable: Callable[[Launch], str], target: Callable[[Launch], str] = _target
) -> Callable[[Launch], list[str]]:
    return lambda l: [
        executable(l),
        "--bind",
        f"{HOST}:{l.port}",
        "--workers",
        "1",
        "--log-level",
        "warning",
        target(l),
    ]


def _serve_py(server: str) -> Callable[[Launch], list[str]]:
    return lambda l: [str(l.bin / "python"), str(APPS / "serve.py"), server, HOST, str(l.port), _target(l)]


def _nginx(conf: str) -> Callable[[Launch], list[str]]:
    def command(l: Launch) -> list[str]:
        text = (BENCH / "nginx" / conf).read_text()
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        for key, value in {
            "TMP": l.tmp,
            "PORT": l.port,
            "DATA": DATA,
            "NOFILE": nofile,
            "CONNECTIONS": max(1024, nofile - 100),
        }.items():
            text = text.replace(f"@@{key}@@", str(value))
        (l.tmp / "nginx.conf").write_text(text)
        return ["/usr/sbin/nginx", "-p", str(l.tmp), "-e", str(l.tmp / "error.log"), "-c", str(l.tmp / "nginx.conf")]

    return command


SERVERS: list[Server] = [
    Server(
        "fulmen",
        "fulmen",
        frozenset(WSGI_SCENARIOS),
        _fulmen(lambda l: str(l.bin / "fulmen")),
        "fulmen, 1 worker (WSGI mode)",
    ),
    # Another build of fulmen in the same run (before/after a change): the
    # fulmen executable of a venv built from the other revision, named by
    # BENCH_FULMEN_BASELINE. Not in the default list: ask for it with --servers.
    Server(
        "fulmen-baseline",
        "fulmen-baseline",
        frozenset(WSGI_SCENARIOS),
        _fulmen(lambda l: os.environ.get("BENCH_FULMEN_BASELINE", "fulmen")),
        "fulmen, 1 worker, the build named by BENCH_FULMEN_BASELINE (a before/after comparison)",
    ),
    Server(
        "fulmen-script",
        "fulmen",
        frozenset(HELLO_SCENARIOS),
        _fulmen(lambda l: str(l.bin / "fulmen"), lambda l: str(APPS / "script_hello.py")),
        "fulmen, 1 worker, script mode (the seed's hello script: 12-byte body)",
        expected_hello=SCRIPT_HELLO,
    ),
    Server(
        "gunicorn-sync",
        "gunicorn",
        frozenset(WSGI_SCENARIOS),
        _gunicorn("-k", "sync", "-w", "1"),
        "gunicorn, sync worker, 1 worker",
    ),
    Server(
        "gunicorn-sync-2w",
        "gunicorn",
        frozenset(WSGI_SCENARIOS),
        _gunicorn("-k", "sync", "-w", "2"),
        "gunicorn, sync worker, 2 workers",
    ),
    Server(
        "gunicorn-gthread",
        "gunicorn",
        frozenset(WSGI_SCENARIOS),
        _gunicorn("-k", "gthread", "-w", "1", "--threads", "4"),
        "gunicorn, gthread worker, 1 worker, 4 threads",
    ),
    Server(
        "granian",
        "granian",
        frozenset(WSGI_SCENARIOS),
        lambda l: [
            str(l.bin / "granian"),
            "--interface",
            "wsgi",
            "--host",
            HOST,
            "--port",
            str(l.port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-ws",
            _target(l),
        ],
        "granian, WSGI interface, 1 worker",
    ),
    Server("bjoern", "bjoern", frozenset(WSGI_SCENARIOS), _serve_py("bjoern"), "bjoern (single process)"),
    Server("fastpysgi", "fastpysgi", frozenset(WSGI_SCENARIOS), _serve_py("fastpysgi"), "fastpysgi (single process)"),
    Server(
        "fastwsgi",
        "fastwsgi",
        frozenset(WSGI_SCENARIOS),
        _serve_py("fastwsgi"),
        "fastwsgi (single process; installed when fastpysgi fails)",
    ),
    Server(
        "waitress",
        "waitress",
        frozenset(WSGI_SCENARIOS),
        lambda l: [str(l.bin / "waitress-serve"), "--host", HOST, "--port", str(l.port), "--threads", "4", _target(l)],
        "waitress, 4 threads (defaults: connection_limit 100, backlog 1024)",
    ),
    Server(
        "uwsgi",
        "uwsgi",
        frozenset(WSGI_SCENARIOS),
        lambda l: [
            str(l.bin / "uwsgi"),
            "--http11-socket",
            f"{HOST}:{l.port}",
            "--home",
            str(VENV),
            "--master",
            "--processes",
            "1",
            "--disable-logging",
            "--die-on-term",
            "--need-app",
            "--http-auto-chunked",
            "--listen",
            "4096",
            "--wsgi-file",
            str(APPS / f"{l.app}.py"),
            "--callable",
            "application",
        ],
        "uWSGI, master + 1 process, --http11-socket (keep-alive)",
    ),
    Server(
        "flask-dev",
        "flask",
        frozenset(WSGI_SCENARIOS),
        _serve_py("werkzeug"),
        "Flask's development server (werkzeug run_simple, threaded, request log off)",
    ),
    Server(
        "nginx-static",
        "nginx",
        frozenset(HELLO_SCENARIOS | {"10k", "file"}),
        _nginx("static.conf"),
        "nginx 1 worker, the bodies as static files (sendfile)",
    ),
    Server(
        "nginx-return",
        "nginx",
        frozenset(HELLO_SCENARIOS),
        _nginx("return.conf"),
        'nginx 1 worker, return 200 "Hello, World!" (the C reference)',
    ),
    Server(
        "epoll-ref",
        "cc",
        frozenset(HELLO_SCENARIOS),
        lambda l: (
            [str(BUILD / "epoll_responder"), str(l.port)] + (["close"] if l.case.scenario in ("close", "ab") else [])
        ),
        "bench/ref/epoll_responder.c: epoll, fixed response, no parsing (the kernel's loopback floor); "
        "closes after each response for close and ab",
    ),
]
# ---- the "static" scenario (issue 11): files of bench/.data/static/ at /static/
STATIC_SCENARIOS = frozenset({"static"})


def _static_dir() -> str:
    return str(DATA / "static")


def _fulmen_static(l: Launch) -> list[str]:
    cmd = _fulmen(lambda m: str(m.bin / "fulmen"))(l)
    return [*cmd[:-1], "--static", f"/static={_static_dir()}", cmd[-1]]


SERVERS += [
    Server(
        "fulmen-static", "fulmen", STATIC_SCENARIOS, _fulmen_static,
        "fulmen, 1 worker, --static /static=bench/.data/static (served by the C++ core)",
    ),
    Server(
        "nginx-static-files", "nginx", STATIC_SCENARIOS, _nginx("static_files.conf"),
        "nginx 1 worker, location /static/ alias (sendfile, open_file_cache)",
    ),
    Server(
        "granian-static", "granian", STATIC_SCENARIOS,
        lambda l: [
            str(l.bin / "granian"), "--interface", "wsgi", "--host", HOST, "--port", str(l.port),
            "--workers", "1", "--log-level", "warning", "--no-ws",
            "--static-path-route", "/static", "--static-path-mount", _static_dir(), _target(l),
        ],
        "granian, WSGI interface, 1 worker, --static-path-route /static --static-path-mount (its Rust static serving)",
    ),
    Server(
        "whitenoise-fulmen", "whitenoise", STATIC_SCENARIOS,
        _fulmen(lambda l: str(l.bin / "fulmen"), lambda l: "whitenoise_app:application"),
        "fulmen, 1 worker, the app wrapped in WhiteNoise (static files from Python)",
    ),
]
SERVER_BY_NAME = {s.name: s for s in SERVERS}


# ==========================================================================
# Scenarios and cases
# ==========================================================================

SCENARIOS = {
    "hello": "GET /, 13 bytes with Content-Length, keep-alive",
    "hello-nocl": "GET /nocl, 13 bytes from a generator, no Content-Length, keep-alive",
    "10k": "GET /10k, 10 KiB body, keep-alive",
    "echo": "POST /echo with a 10 KiB body, sent back, keep-alive (wrk/post.lua)",
    "json": "GET /json, json.dumps of a small dict, keep-alive",
    "flask": "GET / of a one-route Flask app (apps/flask_app.py), keep-alive",
    "file": "GET /file, 1 MiB through wsgi.file_wrapper (nginx: static file), keep-alive",
    "pipeline": "GET /, 16 requests per write (wrk/pipeline.lua)",
    "close": "GET /, Connection: close (a new connection per request)",
    "sweep": "GET /, keep-alive, at each --sweep connection count",
    "ab": "ApacheBench (no -k) over the --ab-n x --ab-c matrix",
    "static": "GET /static/hello.txt (13 B) and /static/1mb.bin (1 MiB) as files, keep-alive and pipelined (16 deep)",
}
DEFAULT_SCENARIOS = [s for s in SCENARIOS if s != "ab"]
QUICK_SCENARIOS = ["hello", "echo", "file", "flask", "pipeline", "close"]


@dataclass(frozen=True)
class Case:
    scenario: str
    name: str  # unique: "hello", "sweep-c1000", "ab-n1000-c10"
    path: str
    connections: int
    tool: str = "wrk"
    lua: str = "report.lua"
    headers: tuple[str, ...] = ()
    ab_n: int = 0
    app: str = "wsgi_app"
    method: str = "GET"


def make_cases(args: argparse.Namespace) -> list[Case]:
    c = args.connections
    cases: list[Case] = []
    for scenario in args.scenarios:
        if scenario == "hello":
            cases.append(Case("hello", "hello", "/", c))
        elif scenario == "hello-nocl":
            cases.append(Case("hello-nocl", "hello-nocl", "/nocl", c))
        elif scenario == "10k":
            cases.append(Case("10k", "10k", "/10k", c))
        elif scenario == "echo":
            cases.append(Case("echo", "echo", "/echo", c, lua="post.lua", method="POST"))
        elif scenario == "json":
            cases.append(Case("json", "json", "/json", c))
        elif scenario == "flask":
            cases.append(Case("flask", "flask", "/", c, app="flask_app"))
        elif scenario == "file":
            cases.append(Case("file", "file", "/file", min(c, 32)))
        elif scenario == "pipeline":
            cases.append(Case("pipeline", "pipeline", "/", c, lua="pipeline.lua"))
        elif scenario == "close":
            cases.append(Case("close", "close", "/", c, headers=("Connection: close",)))
        elif scenario == "sweep":
            cases += [Case("sweep", f"sweep-c{n}", "/", n) for n in args.sweep]
        elif scenario == "static":
            cases += static_cases(c)
        elif scenario == "ab":
            cases += [
                Case("ab", f"ab-n{n}-c{k}", "/", k, tool="ab", ab_n=n) for n in args.ab_n for k in args.ab_c if k <= n
            ]
    return cases


STATIC_SMALL = "/static/hello.txt"
STATIC_BIG = "/static/1mb.bin"


def static_cases(connections: int) -> list[Case]:
    """The static scenario: a 13-byte and a 1 MiB file, keep-alive and pipelined."""
    big = min(connections, 32)  # as the "file" scenario: 1 MiB responses fill buffers fast
    return [
        Case("static", "static-13b", STATIC_SMALL, connections),
        Case("static", "static-13b-pipeline", STATIC_SMALL, connections, lua="pipeline.lua"),
        Case("static", "static-1m", STATIC_BIG, big),
        Case("static", "static-1m-pipeline", STATIC_BIG, big, lua="pipeline.lua"),
    ]


def expected_body(server: Server, case: Case) -> bytes | None:
    """What the probe request must get back (None: only check the length)."""
    if case.path == "/":
        return server.expected_hello
    static = {STATIC_SMALL: HELLO, STATIC_BIG: bytes(range(256)) * 4096}
    return {"/nocl": HELLO, "/10k": b"x" * 10240, "/echo": b"x" * 10240, **static}.get(case.path)


# ==========================================================================
# /proc: the server's process tree, its CPU time and memory
# ==========================================================================


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command, which is in parentheses and may hold spaces.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """root, every descendant of it and every process in its process group."""
    parents: dict[int, int] = {}
    group: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is None:
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        if int(fields[2]) == root:
            group.add(pid)
    tree = {root} if root in parents else set()
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return sorted(tree | group)


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime + cutime + cstime of each process (all threads), in ticks.

    Children's times (cutime, cstime) are included so that a worker that
    exits during the run and is reaped by its master still counts.
    """
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cpu_busy(cpu: int) -> tuple[int, int]:
    """(task time, irq + softirq time) of one CPU from /proc/stat, in ticks.

    Task time is user + nice + system + steal: what processes ran. Interrupt
    time (on loopback, much of the TCP receive path) is charged to no process.
    """
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]] + [0] * 10
            return v[0] + v[1] + v[2] + v[7], v[5] + v[6]
    return 0, 0


class Sampler:
    """Samples the summed VmRSS of the server's processes while a run lasts."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        self.root = root
        self.interval = interval
        self.peak_kb = 0
        self.pids: list[int] = process_tree(root)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        refreshed = time.monotonic()
        while not self._stop.wait(self.interval):
            if time.monotonic() - refreshed > 1.0:
                self.pids = process_tree(self.root)
                refreshed = time.monotonic()
            self.peak_kb = max(self.peak_kb, sum(status_kb(p, "VmRSS") for p in self.pids))

    def __enter__(self) -> Sampler:
        self.peak_kb = sum(status_kb(p, "VmRSS") for p in self.pids)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ==========================================================================
# Running a server
# ==========================================================================


class CpuGroup:
    """A cgroup holding the server's processes, for its CPU time in ns.

    The kernel charges every thread and process in it, those that exit during
    the run included, at nanosecond resolution: ab's short runs are far below
    /proc's 10 ms ticks. cgroup v1 (cpuacct) or v2 (cpu.stat), whichever can
    be created; None where neither can (then /proc ticks are used).
    """

    ROOTS = (
        ("/sys/fs/cgroup/cpuacct", "cpuacct.usage"),
        ("/sys/fs/cgroup/unified", "cpu.stat"),
        ("/sys/fs/cgroup", "cpu.stat"),
    )

    def __init__(self, path: Path, usage_file: str) -> None:
        self.path = path
        self.usage_file = usage_file

    @classmethod
    def create(cls, name: str) -> CpuGroup | None:
        for root, usage in cls.ROOTS:
            base = Path(root)
            if not (base / "cgroup.procs").exists() or not (base / usage).exists() and usage != "cpu.stat":
                continue
            path = base / name
            try:
                path.mkdir()
            except OSError:
                continue
            if (path / usage).exists():
                return cls(path, usage)
            path.rmdir()
        return None

    def wrap(self, argv: list[str]) -> list[str]:
        """argv, started from a shell that first moves itself into the group."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"), *argv]

    def usage_ns(self) -> int:
        text = (self.path / self.usage_file).read_text()
        if self.usage_file == "cpuacct.usage":
            return int(text)
        for line in text.splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) * 1000
        return 0

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


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
        case = self.case
        body = b"x" * 10240 if case.method == "POST" else None
        while True:
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
                conn.request(case.method, case.path, body=body)
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
        expected = expected_body(self.server, case)
        if expected is not None and data != expected:
            raise ServerFailed(f"probe {case.method} {case.path}: unexpected body {data[:80]!r} ({len(data)} bytes)")
        if case.path == "/file" and len(data) != 1 << 20:
            raise ServerFailed(f"probe GET /file: {len(data)} bytes, expected 1 MiB")
        if case.path == "/json":
            json.loads(data)

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


# ==========================================================================
# Load generators
# ==========================================================================


def pin(args: argparse.Namespace, cpu: int) -> list[str]:
    """The prefix that pins a command to one CPU (and raises its priority, --nice)."""
    return (["nice", "-n", str(args.nice)] if args.nice else []) + ["taskset", "-c", str(cpu)]


def wrk_command(case: Case, port: int, duration: float, args: argparse.Namespace) -> list[str]:
    threads = 1
    cmd = [
        *pin(args, args.client_cpu),
        "wrk",
        f"-t{threads}",
        f"-c{max(case.connections, threads)}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        f"{max(1, round(args.wrk_timeout))}s",
        "--latency",
        "-s",
        str(WRK_DIR / case.lua),
    ]
    for header in case.headers:
        cmd += ["-H", header]
    return cmd + [f"http://{HOST}:{port}{case.path}"]


def ab_command(case: Case, port: int, args: argparse.Namespace, n: int | None = None) -> list[str]:
    # -r: keep going on socket receive errors (count them) rather than abort.
    return [
        *pin(args, args.client_cpu),
        "ab",
        "-r",
        "-s",
        "30",
        "-n",
        str(n or case.ab_n),
        "-c",
        str(case.connections),
        f"http://{HOST}:{port}{case.path}",
    ]


def parse_wrk(output: str) -> dict[str, Any]:
    match = re.search(r"^BENCH_JSON (\{.*\})$", output, re.MULTILINE)
    if not match:
        raise ValueError("no BENCH_JSON line in wrk's output:\n" + tail(output))
    raw = json.loads(match.group(1))
    seconds = raw["duration_us"] / 1e6
    errors = {k: raw[k] for k in ("connect", "read", "write", "timeout", "status")}
    return {
        "requests": raw["requests"],
        "seconds": seconds,
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "bytes": raw["bytes"],
        "errors": errors,
        "errors_total": sum(errors.values()),
        "lat_mean_ms": raw["lat_mean_us"] / 1000,
        "lat_p50_ms": raw["lat_p50_us"] / 1000,
        "lat_p90_ms": raw["lat_p90_us"] / 1000,
        "lat_p99_ms": raw["lat_p99_us"] / 1000,
        "lat_max_ms": raw["lat_max_us"] / 1000,
    }


def parse_ab(output: str) -> dict[str, Any]:
    def number(label: str, default: float | None = None) -> float:
        match = re.search(rf"^{re.escape(label)}:\s+([\d.]+)", output, re.MULTILINE)
        if match:
            return float(match.group(1))
        if default is None:
            raise ValueError(f"no {label!r} in ab's output:\n" + tail(output))
        return default

    def percentile(p: int) -> float | None:
        match = re.search(rf"^\s+{p}%\s+(\d+)", output, re.MULTILINE)
        return float(match.group(1)) if match else None

    complete = int(number("Complete requests"))
    failed = int(number("Failed requests", 0))
    non2xx = int(number("Non-2xx responses", 0))
    seconds = number("Time taken for tests")
    return {
        "requests": complete,
        "seconds": seconds,
        "rps": number("Requests per second"),
        "errors": {"failed": failed, "non2xx": non2xx},
        "errors_total": failed + non2xx,
        "lat_p50_ms": percentile(50),
        "lat_p99_ms": percentile(99),
        "lat_max_ms": percentile(100),
    }


def run_load(cmd: list[str], case: Case, timeout: float) -> dict[str, Any]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 and case.tool == "wrk":
        raise ValueError(f"wrk exited {proc.returncode}:\n" + tail(output))
    result = parse_wrk(output) if case.tool == "wrk" else parse_ab(output)
    if proc.returncode != 0:
        result["tool_status"] = proc.returncode
    return result


def measure(
    running: Running, case: Case, args: argparse.Namespace, duration: float, ab_n: int | None = None
) -> dict[str, Any]:
    """One run of the load generator, with the server's CPU time and memory."""
    if case.tool == "wrk":
        cmd = wrk_command(case, running.port, duration, args)
        timeout = duration + args.wrk_timeout + 60
    else:
        cmd = ab_command(case, running.port, args, ab_n)
        timeout = 600
    pids_before = process_tree(running.pgid)
    busy0, irq0 = cpu_busy(args.server_cpu)
    ticks0 = cpu_ticks(pids_before)
    ns0 = running.cgroup.usage_ns() if running.cgroup else None
    loadavg = os.getloadavg()
    client0, _ = cpu_busy(args.client_cpu)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    with Sampler(running.pgid) as sampler:
        result = run_load(cmd, case, timeout)
    elapsed = time.monotonic() - started
    pids_after = process_tree(running.pgid)
    ticks1 = cpu_ticks(pids_after)
    ns1 = running.cgroup.usage_ns() if running.cgroup else None
    busy1, irq1 = cpu_busy(args.server_cpu)
    client1, _ = cpu_busy(args.client_cpu)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    # The load generator's own CPU time, and run.py's (its sampler also runs on the client CPU).
    client_own_s = sum(
        getattr(b, f) - getattr(a, f)
        for a, b in ((children0, children1), (self0, self1))
        for f in ("ru_utime", "ru_stime")
    )
    proc_cpu_s = (ticks1 - ticks0) / CLK_TCK
    cpu_s = (ns1 - ns0) / 1e9 if ns0 is not None and ns1 is not None else proc_cpu_s
    other_s = max(0.0, (busy1 - busy0) / CLK_TCK - cpu_s)
    requests = result["requests"]
    result.update(
        {
            "cmd": shlex.join(cmd),
            "cpu_s": cpu_s,
            "cpu_source": "cgroup" if ns0 is not None else "proc",
            "cpu_us_per_req": cpu_s * 1e6 / requests if requests else None,
            "proc_cpu_s": proc_cpu_s,
            "proc_cpu_us_per_req": proc_cpu_s * 1e6 / requests if requests else None,
            "server_cpu_util": cpu_s / elapsed if elapsed else None,
            "other_load_on_server_cpu": other_s / elapsed if elapsed else None,
            "irq_on_server_cpu": (irq1 - irq0) / CLK_TCK / elapsed if elapsed else None,
            "client_cpu_s": client_own_s,
            "other_load_on_client_cpu": max(0.0, (client1 - client0) / CLK_TCK - client_own_s) / elapsed
            if elapsed
            else None,
            "rss_peak_kb": sampler.peak_kb,
            "hwm_max_kb": max([status_kb(p, "VmHWM") for p in pids_after] or [0]),
            "processes": len(pids_after),
            "server_pids_changed": sorted(set(pids_before) ^ set(pids_after)),
            "server_alive": running.alive(),
            "loadavg_1m": loadavg[0],
            "wall_s": elapsed,
        }
    )
    return result


# ==========================================================================
# The main loop
# ==========================================================================


def fmt_rps(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def run_all(args: argparse.Namespace, install: dict[str, Any]) -> dict[str, Any]:
    versions = installed_versions(sys.executable)
    unavailable: dict[str, str] = {}

    def available(server: Server) -> bool:
        need = server.needs
        if need == "nginx":
            ok = Path("/usr/sbin/nginx").exists()
            reason = "/usr/sbin/nginx not found (apt-get install nginx)"
        elif need == "cc":
            ok = (BUILD / "epoll_responder").exists()
            reason = "bench/ref/epoll_responder.c did not compile (see above)"
        elif need == "fulmen-baseline":
            ok = Path(os.environ.get("BENCH_FULMEN_BASELINE", "/nonexistent")).exists()
            reason = "BENCH_FULMEN_BASELINE does not name a fulmen executable"
        else:
            ok = need in versions
            record = (
                install.get(need) or install.get(next((p.name for p in PEERS if p.alternative == need), need)) or {}
            )
            reason = "not installed"
            if record.get("error"):
                reason = f"pip install failed ({record.get('hint') or 'see the JSON for the log'})"
            if server.name == "fastwsgi" and "fastpysgi" in versions:
                reason = "fastpysgi installed instead"
        if not ok:
            unavailable[server.name] = reason
        return ok

    servers = [SERVER_BY_NAME[n] for n in args.servers]
    servers = [s for s in servers if available(s)]
    cases = make_cases(args)
    plan = [(s, c) for s in servers for c in cases if c.scenario in s.scenarios]
    total_runs = len(plan) * args.repeats
    eta = sum(
        (args.warmup + args.repeats * args.duration + 1.5) if c.tool == "wrk" else 10 * args.repeats for _, c in plan
    )
    print(
        f"bench: {len(plan)} cases x {args.repeats} repeats = {total_runs} runs, "
        f"about {eta / 60:.0f} min for the wrk cases",
        flush=True,
    )
    for name, reason in unavailable.items():
        print(f"bench: skipping {name}: {reason}", flush=True)

    runs: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    try:
        measure_plan(plan, args, runs, failures, total_runs)
    except KeyboardInterrupt:
        print("\nbench: interrupted: saving what was measured", flush=True)
    return {"runs": runs, "failures": failures, "unavailable": unavailable, "versions": versions}


def measure_plan(
    plan: list[tuple[Server, Case]],
    args: argparse.Namespace,
    runs: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    total_runs: int,
) -> None:
    index = 0
    for server, case in plan:
        label = f"{server.name} {case.name}"
        running: Running | None = None
        try:
            running = Running(server, case, args)
            running.wait_ready()
            # Warm-up: same load, shorter, not recorded.
            if case.tool == "wrk" and args.warmup > 0:
                measure(running, case, args, args.warmup)
            elif case.tool == "ab":
                measure(running, case, args, 0, ab_n=min(case.ab_n, 1000))
            for repeat in range(1, args.repeats + 1):
                index += 1
                prefix = f"[{index}/{total_runs}] {label} run {repeat}/{args.repeats} ..."
                print(prefix, end="", flush=True)
                result = measure(running, case, args, args.duration)
                record = {
                    "server": server.name,
                    "scenario": case.scenario,
                    "case": case.name,
                    "tool": case.tool,
                    "connections": case.connections,
                    "path": case.path,
                    "repeat": repeat,
                    **result,
                }
                runs.append(record)
                notes = []
                if not result["requests"]:
                    notes.append("NO RESPONSES")
                if result["errors_total"]:
                    notes.append(f"{result['errors_total']:,} errors {result['errors']}")
                if not result["server_alive"]:
                    notes.append("SERVER EXITED")
                elif result["server_pids_changed"]:
                    notes.append(f"processes changed {result['server_pids_changed']}")
                if (result["other_load_on_client_cpu"] or 0) > 0.1:
                    notes.append(f"other load on CPU {args.client_cpu}: {result['other_load_on_client_cpu']:.0%}")
                if (result["other_load_on_server_cpu"] or 0) > 0.1:
                    notes.append(f"other load on CPU {args.server_cpu}: {result['other_load_on_server_cpu']:.0%}")
                cpu = result["cpu_us_per_req"]
                print(
                    f" {fmt_rps(result['rps'])} req/s, {'—' if cpu is None else f'{cpu:.1f}'} µs CPU/req, "
                    f"p99 {result['lat_p99_ms'] if result['lat_p99_ms'] is not None else '—'} ms"
                    + (f"  [{'; '.join(notes)}]" if notes else ""),
                    flush=True,
                )
                if not result["server_alive"]:
                    raise ServerFailed(f"exited with status {running.proc.returncode} during run {repeat}")
        except (ServerFailed, ValueError, subprocess.TimeoutExpired, OSError) as error:
            index += args.repeats - sum(1 for r in runs if r["server"] == server.name and r["case"] == case.name)
            message = str(error).strip()
            log = running.log_tail() if running else ""
            print(
                f"\n[{label}] FAILED: {message}"
                + ("\n  server log:\n    " + log.replace("\n", "\n    ") if log else ""),
                flush=True,
            )
            failures.append(
                {
                    "kind": "failure",
                    "server": server.name,
                    "case": case.name,
                    "message": message,
                    "server_cmd": shlex.join(running.argv) if running else None,
                    "server_log": log,
                }
            )
        finally:
            if running is not None:
                running.stop()
                if running.log_tail() and server.name.startswith("fulmen"):
                    # fulmen's own warnings under load are worth keeping.
                    text = running.log_tail(40)
                    if text and not any(f["server"] == server.name and f["case"] == case.name for f in failures):
                        failures.append(
                            {
                                "kind": "log",
                                "server": server.name,
                                "case": case.name,
                                "message": "what fulmen logged (--log-level warning)",
                                "server_cmd": shlex.join(running.argv),
                                "server_log": text,
                            }
                        )
                running.cleanup()


# ==========================================================================
# Results: JSON, markdown, plots
# ==========================================================================


def summarize(runs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["server"], run["case"]), []).append(run)
    summary = {}
    for key, group in groups.items():

        def stats(field_name: str, group: list[dict[str, Any]] = group) -> dict[str, float] | None:
            values = [
                r[field_name]
                for r in group
                if r.get(field_name) is not None
                # wrk keeps no latency sample when no pipelined batch completed (lat_max 0)
                and not (field_name.startswith("lat_") and r["tool"] == "wrk" and not r.get("lat_max_ms"))
                # wrk's p99 comes out as 0 (below p50) when its histogram overflows: no figure
                and not (
                    field_name == "lat_p99_ms" and r["tool"] == "wrk" and r[field_name] < (r.get("lat_p50_ms") or 0)
                )
                # too few responses for a per-request cost
                and not (field_name == "cpu_us_per_req" and r["requests"] < 100)
            ]
            if not values:
                return None
            return {"median": statistics.median(values), "min": min(values), "max": max(values)}

        summary[key] = {
            "server": key[0],
            "case": key[1],
            "scenario": group[0]["scenario"],
            "connections": group[0]["connections"],
            "n": len(group),
            "rps": stats("rps"),
            "cpu_us_per_req": stats("cpu_us_per_req"),
            "lat_p50_ms": stats("lat_p50_ms"),
            "lat_p99_ms": stats("lat_p99_ms"),
            "errors": sum(r["errors_total"] for r in group),
            "error_kinds": _sum_dicts([r["errors"] for r in group]),
            "requests": sum(r["requests"] for r in group),
            "rss_peak_kb": max(r["rss_peak_kb"] for r in group),
            "other_load": max((r.get("other_load_on_server_cpu") or 0) for r in group),
            "other_load_client": max((r.get("other_load_on_client_cpu") or 0) for r in group)
            if any("other_load_on_client_cpu" in r for r in group)
            else None,
            "crashed": any(not r["server_alive"] or r["server_pids_changed"] for r in group),
        }
    return summary


def _sum_dicts(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            if v:
                out[k] = out.get(k, 0) + v
    return out


def case_order(case: str) -> tuple[int, int, int]:
    scenario_index = {s: i for i, s in enumerate(SCENARIOS)}
    if case.startswith("sweep-c"):
        return scenario_index["sweep"], int(case[7:]), 0
    match = re.fullmatch(r"ab-n(\d+)-c(\d+)", case)
    if match:
        return scenario_index["ab"], int(match.group(1)), int(match.group(2))
    return scenario_index.get(case, 99), 0, 0


def server_order(name: str) -> int:
    names = [s.name for s in SERVERS]
    return names.index(name) if name in names else 99


def write_markdown(path: Path, data: dict[str, Any], plots: list[Path]) -> None:
    summary = summarize(data["runs"])
    cases = sorted({k[1] for k in summary}, key=case_order)
    lines: list[str] = []
    out = lines.append
    inv = data["invocations"]
    machine = inv[-1]["machine"]
    out(f"# Benchmark results: {data['date']}, {data['host']}")
    out("")
    out(
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']:.0f} GiB, Linux {machine['kernel']}. "
        f"Server pinned to CPU {inv[-1]['options']['server_cpu']}, load generator to CPU {inv[-1]['options']['client_cpu']}. "
        "Method: [bench/README.md](../README.md). Each cell: median of the repeats, (min–max) of req/s; "
        "CPU µs/req is the server's user+sys time (all its processes) per response served, "
        + (
            "measured with a cgroup (ns resolution)"
            if all(r.get("cpu_source") == "cgroup" for r in data["runs"])
            else "from /proc/<pid>/stat (10 ms ticks) where no cgroup could be made"
        )
        + ". "
        "'other load' is the share of the server's CPU that other processes on the machine took during the run "
        "(the server and the load generator run at nice -20 when --nice says so: then that is mostly time the "
        "server left idle)."
    )
    out("")
    out("Commands:")
    out("")
    for i in inv:
        out(
            f"- `{i['command']}` — {i['started']}, fulmen {i['fulmen_rev']}, Python {i['python']}, "
            f"duration {i['options']['duration']:g}s × {i['options']['repeats']} repeats"
        )
    out("")
    out("## Servers")
    out("")
    out("| server | what | version / status |")
    out("|---|---|---|")
    versions = inv[-1]["versions"]
    status = {}
    for i in inv:
        status.update(i.get("unavailable", {}))
    install = inv[-1].get("install", {})
    for server in SERVERS:
        record = install.get(server.needs or "") or {}
        if server.name == "fastwsgi" and "fastwsgi" not in versions:
            continue
        if record and not record.get("ok"):
            state = f"**not installed: pip install failed** ({record.get('hint') or 'log in the JSON'})"
        elif server.name in status and not any(k[0] == server.name for k in summary):
            state = f"**not run: {status[server.name]}**"
        elif server.needs in ("nginx", "cc"):
            state = {"nginx": inv[-1]["tools"].get("nginx", ""), "cc": inv[-1]["tools"].get("cc", "")}[server.needs]
        else:
            state = versions.get(server.needs or "", "")
            if server.needs == "fulmen":
                state = f"{state} ({inv[-1]['fulmen_rev']})"
        out(f"| {server.name} | {server.describe} | {state} |")
    out("")

    def cell(stat: dict[str, float] | None, digits: int = 0, spread: bool = False) -> str:
        if not stat:
            return "—"
        form = f"{{:,.{digits}f}}"
        text = form.format(stat["median"])
        if spread:
            text += f" ({form.format(stat['min'])}–{form.format(stat['max'])})"
        return text

    main_cases = [c for c in cases if not c.startswith(("sweep-", "ab-"))]
    for case in main_cases:
        rows = sorted(
            (v for k, v in summary.items() if k[1] == case), key=lambda v: -(v["rps"]["median"] if v["rps"] else 0)
        )
        scenario = rows[0]["scenario"]
        out(f"## {case}: {SCENARIOS.get(scenario, '')}, {rows[0]['connections']} connections")
        out("")
        out(
            "| server | req/s median (min–max) | CPU µs/req | p50 ms | p99 ms | errors | peak RSS MiB "
            "| other load: server CPU / client CPU |"
        )
        out("|---|---|---|---|---|---|---|---|")
        for v in rows:
            flags = " ⚠ crashed/restarted" if v["crashed"] else ""
            if not v["requests"]:
                flags += " ⚠ no responses"
            errors = f"{v['errors']:,}" + (
                " " + ", ".join(f"{k} {n:,}" for k, n in v["error_kinds"].items()) if v["errors"] else ""
            )
            out(
                f"| {v['server']}{flags} | {cell(v['rps'], spread=True)} | {cell(v['cpu_us_per_req'], 1)} | "
                f"{cell(v['lat_p50_ms'], 2)} | {cell(v['lat_p99_ms'], 2)} | {errors} | {v['rss_peak_kb'] / 1024:.1f} | "
                f"{v['other_load']:.0%} / "
                + ("—" if v["other_load_client"] is None else f"{v['other_load_client']:.0%}")
                + " |"
            )
        out("")

    def matrix(cols: list[str], heads: list[str], err_word: str, flags: bool) -> None:
        """One row per server, one "req/s (CPU µs/req) [errors]" cell per case in cols."""
        out("| server | " + " | ".join(heads) + " |")
        out("|---|" + "---|" * len(cols))
        for server in sorted({k[0] for k in summary if k[1] in cols}, key=server_order):
            cells = []
            for c in cols:
                v = summary.get((server, c))
                if not v:
                    cells.append("—")
                    continue
                text = f"{cell(v['rps'])} ({cell(v['cpu_us_per_req'], 1)})"
                if v["errors"]:
                    text += f" [{v['errors']:,}{err_word}]"
                if flags and v["other_load"] > 0.1:
                    text += f" ⁽{v['other_load']:.0%} other load⁾"
                if flags and v["crashed"]:
                    text += " ⚠"
                cells.append(text)
            out(f"| {server} | " + " | ".join(cells) + " |")
        out("")

    sweep = [c for c in cases if c.startswith("sweep-")]
    if sweep:
        out("## Concurrency sweep: hello, keep-alive — req/s median (CPU µs/req) [errors]")
        out("")
        matrix(sweep, [f"{c[7:]} conns" for c in sweep], " err", flags=True)

    ab = [c for c in cases if c.startswith("ab-")]
    if ab:
        out("## ApacheBench matrix (no keep-alive) — req/s median (CPU µs/req) [failed]")
        out("")
        out(
            "ab is single-threaded and on its own core; on a small machine it saturates before "
            "the faster servers do, so the top of this table measures ab."
        )
        out("")
        matrix(ab, [f"n={c.split('-')[1][1:]} c={c.split('-')[2][1:]}" for c in ab], "", flags=False)

    for kind, title in (("failure", "Failures"), ("log", "fulmen's log lines")):
        entries = [f for f in data["failures"] if f.get("kind", "failure") == kind]
        if not entries:
            continue
        out(f"## {title}")
        out("")
        for f in entries:
            out(f"- **{f['server']} {f['case']}**: {f['message']}")
            if f.get("server_log"):
                out("")
                out("  ```")
                for line in f["server_log"].splitlines()[-12:]:
                    out("  " + line)
                out("  ```")
        out("")
    if plots:
        out("## Plots")
        out("")
        for plot in plots:
            out(f"![{plot.stem}]({plot.name})")
            out("")
    path.write_text("\n".join(lines))


def write_plots(stem: Path, data: dict[str, Any]) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed in bench/.venv: no plots", flush=True)
        return []
    summary = summarize(data["runs"])
    cases = sorted({k[1] for k in summary if not k[1].startswith(("sweep-", "ab-"))}, key=case_order)
    written = []
    for metric, title, filename in (
        ("rps", "requests/s (median, min–max)", "rps"),
        ("cpu_us_per_req", "server CPU µs per request (median, min–max)", "cpu"),
    ):
        if not cases:
            break
        cols = min(3, len(cases))
        rows = (len(cases) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 0.45 * len(SERVERS) * rows + 1.5), squeeze=False)
        for ax, case in zip(axes.flat, cases):
            items = [(v["server"], v[metric]) for k, v in summary.items() if k[1] == case and v[metric]]
            items.sort(key=lambda item: item[1]["median"])
            names = [i[0] for i in items]
            medians = [i[1]["median"] for i in items]
            low = [i[1]["median"] - i[1]["min"] for i in items]
            high = [i[1]["max"] - i[1]["median"] for i in items]
            colors = [
                "#d62728"
                if n.startswith("fulmen")
                else "#7f7f7f"
                if n in ("nginx-static", "nginx-return", "epoll-ref")
                else "#1f77b4"
                for n in names
            ]
            ax.barh(names, medians, xerr=[low, high], color=colors, capsize=2)
            top = max(medians) if medians else 1
            for y, value in enumerate(medians):
                ax.text(
                    value + top * 0.02,
                    y,
                    f"{value:,.0f}" if metric == "rps" else f"{value:,.1f}",
                    va="center",
                    fontsize=7,
                )
            ax.set_xlim(0, top * 1.25)
            ax.set_title(case)
            ax.tick_params(axis="y", labelsize=8)
            ax.grid(axis="x", alpha=0.3)
        for ax in list(axes.flat)[len(cases) :]:
            ax.axis("off")
        fig.suptitle(f"{title} — {data['host']} {data['date']}")
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        out = stem.with_name(f"{stem.name}-{filename}.png")
        fig.savefig(out, dpi=90)
        plt.close(fig)
        written.append(out)

    sweep = sorted({k[1] for k in summary if k[1].startswith("sweep-")}, key=case_order)
    if sweep:
        fig, ax = plt.subplots(figsize=(9, 6))
        for server in sorted({k[0] for k in summary if k[1] in sweep}, key=server_order):
            points = [
                (int(c[7:]), summary[(server, c)]["rps"]["median"])
                for c in sweep
                if (server, c) in summary and summary[(server, c)]["rps"]
            ]
            if points:
                style = (
                    "-o"
                    if server.startswith("fulmen")
                    else "--."
                    if server in ("nginx-static", "nginx-return", "epoll-ref")
                    else "-."
                )
                ax.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    style,
                    label=server,
                    linewidth=2.5 if server.startswith("fulmen") else 1.2,
                )
        ax.set_xscale("log")
        ax.set_xlabel("connections (wrk, keep-alive)")
        ax.set_ylabel("requests/s (median)")
        ax.set_title(f"hello: req/s vs concurrency — {data['host']} {data['date']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        out = stem.with_name(f"{stem.name}-sweep.png")
        fig.savefig(out, dpi=90)
        plt.close(fig)
        written.append(out)
    return written


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "kernel": platform.release(),
        "somaxconn": _read("/proc/sys/net/core/somaxconn"),
        "ip_local_port_range": _read("/proc/sys/net/ipv4/ip_local_port_range"),
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def tool_versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (proc.stdout + proc.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "missing"

    return {
        "wrk": first_line(["wrk", "-v"]),
        "ab": first_line(["ab", "-V"]),
        "nginx": first_line(["/usr/sbin/nginx", "-v"]),
        "cc": first_line(["cc", "--version"]),
    }


def git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "status",
                "--porcelain",
                "--",
                "src",
                "python",
                "CMakeLists.txt",
                "pyproject.toml",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def save(
    args: argparse.Namespace, outcome: dict[str, Any], install: dict[str, Any], command: str, started: str
) -> Path:
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{_dt.date.today().isoformat()}-{socket.gethostname()}"
    json_path = stem.with_suffix(".json")
    data: dict[str, Any] = {
        "schema": 1,
        "date": _dt.date.today().isoformat(),
        "host": socket.gethostname(),
        "invocations": [],
        "runs": [],
        "failures": [],
    }
    if json_path.exists() and not args.fresh:
        # The same day's earlier invocations are kept, except what this one re-measured.
        data = json.loads(json_path.read_text())
        measured = {(r["server"], r["case"]) for r in outcome["runs"]} | {
            (f["server"], f["case"]) for f in outcome["failures"]
        }
        data["runs"] = [r for r in data["runs"] if (r["server"], r["case"]) not in measured]
        data["failures"] = [f for f in data["failures"] if (f["server"], f["case"]) not in measured]
    invocation = max([i["id"] for i in data["invocations"]] or [0]) + 1
    opts = {k: v for k, v in vars(args).items() if k not in ("out",)}
    data["invocations"].append(
        {
            "id": invocation,
            "started": started,
            "command": command,
            "options": opts,
            "python": platform.python_version(),
            "fulmen_rev": git_rev(),
            "versions": {
                k: v
                for k, v in outcome["versions"].items()
                if k in {p.name for p in PEERS} | {p.alternative for p in PEERS} | {"fulmen", "werkzeug"}
            },
            "install": install,
            "unavailable": outcome["unavailable"],
            "machine": machine_info(),
            "tools": tool_versions(),
        }
    )
    for record in outcome["runs"] + outcome["failures"]:
        record["invocation"] = invocation
    data["runs"] += outcome["runs"]
    data["failures"] += outcome["failures"]
    used = {r["invocation"] for r in data["runs"] + data["failures"]} | {invocation}
    data["invocations"] = [i for i in data["invocations"] if i["id"] in used]
    data["summary"] = [dict(v) for v in summarize(data["runs"]).values()]
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(json_path)
    plots = write_plots(stem, data)
    write_markdown(stem.with_suffix(".md"), data, plots)
    return json_path


# ==========================================================================
# Command line
# ==========================================================================


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_ints(text: str) -> list[int]:
    return [int(item) for item in parse_list(text)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="servers: "
        + ", ".join(s.name for s in SERVERS)
        + "\nscenarios: "
        + ", ".join(SCENARIOS)
        + " (default: all but ab)\nMethod and caveats: bench/README.md",
    )
    parser.add_argument("--servers", type=parse_list, default=None, help="comma-separated server names (default: all)")
    parser.add_argument(
        "--scenarios", type=parse_list, default=None, help="comma-separated scenarios, or 'all' (default: all but ab)"
    )
    parser.add_argument("--duration", type=int, default=None, help="seconds per measured run (default 10)")
    parser.add_argument("--repeats", type=int, default=None, help="measured runs per case (default 3)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="seconds of unrecorded warm-up load per case (default: min(duration, 3))",
    )
    parser.add_argument("--connections", type=int, default=100, help="wrk connections (default 100)")
    parser.add_argument(
        "--sweep",
        type=parse_ints,
        default=None,
        help="connection counts of the sweep scenario (default 10,100,1000,10000)",
    )
    parser.add_argument("--ab-n", type=parse_ints, default=None, help="ab -n values (default 1000,10000,50000)")
    parser.add_argument("--ab-c", type=parse_ints, default=None, help="ab -c values (default 10,100,500,1000)")
    parser.add_argument(
        "--wrk-timeout",
        type=int,
        default=5,
        help="wrk --timeout: a response slower than this counts as an error (default 5)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 s runs, 1 repeat, short sweep and ab matrix; results go to bench/.quick/",
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to (default 0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU the load generator is pinned to (default 1)")
    parser.add_argument(
        "--nice",
        type=int,
        default=-20 if os.geteuid() == 0 else 0,
        help="niceness of the server and the load generator, so that other jobs on the machine take less of "
        "their CPUs (default -20 as root, else 0; 0 runs them as they are)",
    )
    parser.add_argument(
        "--no-cgroup",
        dest="cgroup",
        action="store_false",
        help="measure server CPU time from /proc/<pid>/stat ticks only, not from a cgroup",
    )
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    parser.add_argument(
        "--fresh", action="store_true", help="overwrite today's results file instead of merging into it"
    )
    parser.add_argument(
        "--reinstall", action="store_true", help="retry peers that failed to install and rebuild fulmen"
    )
    parser.add_argument("--recreate-venv", action="store_true", help="delete bench/.venv and start again")
    parser.add_argument("--setup-only", action="store_true", help="create the venv and install, then stop")
    parser.add_argument("--list", action="store_true", help="list the servers and scenarios")
    return parser


def finish_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    quick = args.quick
    if args.duration is None:
        args.duration = 1 if quick else 10
    if args.repeats is None:
        args.repeats = 1 if quick else 3
    if args.warmup is None:
        args.warmup = 1 if quick else min(args.duration, 3)
    if args.sweep is None:
        args.sweep = [10, 1000] if quick else [10, 100, 1000, 10000]
    if args.ab_n is None:
        args.ab_n = [1000] if quick else [1000, 10000, 50000]
    if args.ab_c is None:
        args.ab_c = [10, 100] if quick else [10, 100, 500, 1000]
    if args.out is None:
        args.out = str(BENCH / (".quick" if quick else "results"))
    if args.scenarios is None:
        args.scenarios = QUICK_SCENARIOS if quick else DEFAULT_SCENARIOS
    elif args.scenarios == ["all"]:
        args.scenarios = list(SCENARIOS)
    if args.servers is None or args.servers == ["all"]:
        args.servers = [s.name for s in SERVERS if s.name != "fulmen-baseline"]
    for name in args.servers:
        if name not in SERVER_BY_NAME:
            parser.error(f"--servers: unknown server {name!r} (known: {', '.join(SERVER_BY_NAME)})")
    for name in args.scenarios:
        if name not in SCENARIOS:
            parser.error(f"--scenarios: unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    if args.repeats < 1 or args.duration <= 0:
        parser.error("--repeats must be >= 1 and --duration > 0")
    if "ab" in args.scenarios and any(c > n for n in args.ab_n for c in args.ab_c):
        print("bench: note: ab refuses -c greater than -n: those cells are skipped", flush=True)


def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def prepare_files() -> None:
    DATA.mkdir(exist_ok=True)
    for name, content in (("hello.txt", HELLO), ("10k.bin", b"x" * 10240), ("1mb.bin", bytes(range(256)) * 4096)):
        path = DATA / name
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
    BUILD.mkdir(exist_ok=True)
    source = BENCH / "ref" / "epoll_responder.c"
    binary = BUILD / "epoll_responder"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        proc = subprocess.run(["cc", "-O2", "-Wall", "-o", str(binary), str(source)], capture_output=True, text=True)
        if proc.returncode != 0:
            print("bench: epoll_responder.c did not compile:\n" + tail(proc.stdout + proc.stderr), flush=True)
            binary.unlink(missing_ok=True)


def prepare_static_files() -> None:
    """bench/.data/static/: the static scenario's two files, served by every peer."""
    folder = DATA / "static"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("hello.txt", HELLO), ("1mb.bin", bytes(range(256)) * 4096)):
        path = folder / name
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)


def take_lock() -> Any:
    """One run at a time: two would share the two CPUs and the results file."""
    import fcntl

    BUILD.mkdir(exist_ok=True)
    lock = open(BUILD / "run.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("bench: another bench/run.py is running: waiting for it to finish", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print("servers:")
        for s in SERVERS:
            print(f"  {s.name:18} {s.describe}")
        print("scenarios:")
        for name, text in SCENARIOS.items():
            print(f"  {name:18} {text}")
        return 0
    finish_args(args, parser)
    if sys.version_info < (3, 10):  # noqa: UP036 (run.py may be started by any python3)
        sys.exit("bench/run.py needs Python >= 3.10")

    lock = take_lock()  # noqa: F841 (held until exit)
    in_venv = Path(sys.prefix).resolve() == VENV.resolve()
    if not in_venv:
        install = setup_venv(args)
        if args.setup_only:
            print(
                json.dumps(
                    {k: ("ok" if v["ok"] else "FAILED: " + (v.get("hint") or "")) for k, v in install.items()}, indent=1
                )
            )
            return 0
        env = dict(os.environ, **{IN_VENV_FLAG: " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])})
        python = str(VENV / "bin" / "python")
        os.execve(python, [python, str(Path(__file__).resolve()), *(sys.argv[1:] if argv is None else argv)], env)
    install = json.loads(INSTALL_STATE.read_text()) if INSTALL_STATE.exists() else {}
    command = "python bench/run.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    started = _dt.datetime.now().isoformat(timespec="seconds")

    for name, record in install.items():
        if not record["ok"]:
            print(f"bench: {name} FAILED to install ({record.get('hint') or 'see below'}):", flush=True)
            print("    " + tail(record.get("error") or "", 8).replace("\n", "\n    "), flush=True)

    nofile = raise_nofile()
    if max(args.sweep) + 100 > nofile[0] and "sweep" in args.scenarios:
        print(
            f"bench: note: open-files limit {nofile[0]} is below the largest sweep level: "
            "that level will see connect errors",
            flush=True,
        )
    try:
        os.sched_setaffinity(0, {args.client_cpu})  # run.py itself stays off the server's CPU
    except OSError as error:
        print(f"bench: cannot pin to CPU {args.client_cpu}: {error}", flush=True)
    prepare_files()
    prepare_static_files()

    outcome = run_all(args, install)
    path = save(args, outcome, install, command, started)
    print(f"bench: wrote {path} and {path.with_suffix('.md')} (+ plots)", flush=True)
    return 1 if any(f["kind"] == "failure" for f in outcome["failures"]) and not outcome["runs"] else 0


if __name__ == "__main__":
    sys.exit(main())
