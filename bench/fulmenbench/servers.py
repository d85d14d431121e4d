"""The servers: how each one is started, and which scenarios it runs.

A server is one row of SERVERS: a name, the peer it needs (a distribution in
bench/.venv, or "fulmen", "nginx", "cc"), the scenarios it runs (by group, see
scenarios.py), the command that starts it for a case and a one-line
description. A new peer is one row here (and, if pip installs it, one Peer in
install.py). The order of SERVERS is the order of --list and of the report.
"""

from __future__ import annotations

import os
import resource
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .common import APPS, BENCH, BUILD, DATA, HELLO, HOST, SCRIPT_HELLO, VENV
from .scenarios import FILES, PLAIN, STATIC, THREADED, WSGI, Case, scenarios_in

WSGI_SCENARIOS = scenarios_in(WSGI)
HELLO_SCENARIOS = scenarios_in(PLAIN)
# An app that waits (issue 10): only servers that run the app on threads are measured.
WAIT_SCENARIOS = scenarios_in(THREADED)
# The "static" scenario (issue 11): files of bench/.data/static/ at /static/.
STATIC_SCENARIOS = scenarios_in(STATIC)


@dataclass
class Launch:
    """What starting one server for one case needs."""

    port: int
    app: str  # the module in bench/apps: "wsgi_app", "flask_app", ...
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
    expected_hello: bytes = HELLO  # what it answers where the others answer HELLO


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
    executable: Callable[[Launch], str], target: Callable[[Launch], str] = _target, extra: tuple[str, ...] = ()
) -> Callable[[Launch], list[str]]:
    return lambda l: [
        executable(l),
        "--bind",
        f"{HOST}:{l.port}",
        "--workers",
        "1",
        "--log-level",
        "warning",
        *extra,
        target(l),
    ]


def _venv_fulmen(l: Launch) -> str:
    return str(l.bin / "fulmen")


def _granian(*extra: str) -> Callable[[Launch], list[str]]:
    return lambda l: [
        str(l.bin / "granian"),
        "--interface",
        "wsgi",
        "--host",
        HOST,
        "--port",
        str(l.port),
        "--workers",
        "1",
        *extra,
        "--log-level",
        "warning",
        "--no-ws",
        _target(l),
    ]


def _serve_py(server: str) -> Callable[[Launch], list[str]]:
    return lambda l: [str(l.bin / "python"), str(APPS / "serve.py"), server, HOST, str(l.port), _target(l)]


def _uwsgi(l: Launch) -> list[str]:
    return [
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
    ]


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


def _epoll_ref(l: Launch) -> list[str]:
    return [str(BUILD / "epoll_responder"), str(l.port)] + (["close"] if l.case.scenario in ("close", "ab") else [])


def _static_dir() -> str:
    return str(DATA / "static")


def _fulmen_static(l: Launch) -> list[str]:
    cmd = _fulmen(_venv_fulmen)(l)
    return [*cmd[:-1], "--static", f"/static={_static_dir()}", cmd[-1]]


def _granian_static(l: Launch) -> list[str]:
    cmd = _granian()(l)
    return [*cmd[:-1], "--static-path-route", "/static", "--static-path-mount", _static_dir(), cmd[-1]]


SERVERS: list[Server] = [
    Server("fulmen", "fulmen", WSGI_SCENARIOS, _fulmen(_venv_fulmen), "fulmen, 1 worker (WSGI mode)"),
    # Another build of fulmen in the same run (before/after a change): the
    # fulmen executable of a venv built from the other revision, named by
    # BENCH_FULMEN_BASELINE. Not in the default list: ask for it with --servers.
    Server(
        "fulmen-baseline",
        "fulmen-baseline",
        WSGI_SCENARIOS,
        _fulmen(lambda l: os.environ.get("BENCH_FULMEN_BASELINE", "fulmen")),
        "fulmen, 1 worker, the build named by BENCH_FULMEN_BASELINE (a before/after comparison)",
    ),
    # --threads (issue 10): the threaded path on the ordinary scenarios (against the
    # inline default), and the pool sized as the peers' for the app that waits.
    Server(
        "fulmen-t4",
        "fulmen",
        WSGI_SCENARIOS,
        _fulmen(_venv_fulmen, extra=("--threads", "4")),
        "fulmen, 1 worker, --threads 4",
    ),
    # Observability (issue 9): the access log (to a file, default format) and
    # the metrics page, each against the default build in the same run.
    Server(
        "fulmen-accesslog",
        "fulmen",
        WSGI_SCENARIOS,
        _fulmen(_venv_fulmen, extra=("--access-logfile", str(Path(tempfile.gettempdir()) / "fulmen-bench-access.log"))),
        "fulmen, 1 worker, --access-logfile FILE (gunicorn's default format)",
    ),
    Server(
        "fulmen-metrics",
        "fulmen",
        WSGI_SCENARIOS,
        _fulmen(_venv_fulmen, extra=("--metrics-bind", "127.0.0.1:0")),
        "fulmen, 1 worker, --metrics-bind (Prometheus counters)",
    ),
    Server(
        "fulmen-t32",
        "fulmen",
        WAIT_SCENARIOS,
        _fulmen(_venv_fulmen, extra=("--threads", "32")),
        "fulmen, 1 worker, --threads 32",
    ),
    Server(
        "fulmen-script",
        "fulmen",
        HELLO_SCENARIOS,
        _fulmen(_venv_fulmen, lambda l: str(APPS / "script_hello.py")),
        "fulmen, 1 worker, script mode (the seed's hello script: 12-byte body)",
        expected_hello=SCRIPT_HELLO,
    ),
    Server(
        "gunicorn-sync",
        "gunicorn",
        WSGI_SCENARIOS,
        _gunicorn("-k", "sync", "-w", "1"),
        "gunicorn, sync worker, 1 worker",
    ),
    Server(
        "gunicorn-sync-2w",
        "gunicorn",
        WSGI_SCENARIOS,
        _gunicorn("-k", "sync", "-w", "2"),
        "gunicorn, sync worker, 2 workers",
    ),
    Server(
        "gunicorn-gthread",
        "gunicorn",
        WSGI_SCENARIOS,
        _gunicorn("-k", "gthread", "-w", "1", "--threads", "4"),
        "gunicorn, gthread worker, 1 worker, 4 threads",
    ),
    Server(
        "gunicorn-gthread-32",
        "gunicorn",
        WAIT_SCENARIOS,
        _gunicorn("-k", "gthread", "-w", "1", "--threads", "32"),
        "gunicorn, gthread worker, 1 worker, 32 threads",
    ),
    Server(
        "granian-bt32",
        "granian",
        WAIT_SCENARIOS,
        _granian("--blocking-threads", "32"),
        "granian, WSGI interface, 1 worker, 32 blocking threads",
    ),
    Server("granian", "granian", WSGI_SCENARIOS, _granian(), "granian, WSGI interface, 1 worker"),
    Server("bjoern", "bjoern", WSGI_SCENARIOS, _serve_py("bjoern"), "bjoern (single process)"),
    Server("fastpysgi", "fastpysgi", WSGI_SCENARIOS, _serve_py("fastpysgi"), "fastpysgi (single process)"),
    Server(
        "fastwsgi",
        "fastwsgi",
        WSGI_SCENARIOS,
        _serve_py("fastwsgi"),
        "fastwsgi (single process; installed when fastpysgi fails)",
    ),
    Server(
        "waitress",
        "waitress",
        WSGI_SCENARIOS,
        lambda l: [str(l.bin / "waitress-serve"), "--host", HOST, "--port", str(l.port), "--threads", "4", _target(l)],
        "waitress, 4 threads (defaults: connection_limit 100, backlog 1024)",
    ),
    Server("uwsgi", "uwsgi", WSGI_SCENARIOS, _uwsgi, "uWSGI, master + 1 process, --http11-socket (keep-alive)"),
    Server(
        "flask-dev",
        "flask",
        WSGI_SCENARIOS,
        _serve_py("werkzeug"),
        "Flask's development server (werkzeug run_simple, threaded, request log off)",
    ),
    Server(
        "nginx-static",
        "nginx",
        scenarios_in(PLAIN, FILES),
        _nginx("static.conf"),
        "nginx 1 worker, the bodies as static files (sendfile)",
    ),
    Server(
        "nginx-return",
        "nginx",
        HELLO_SCENARIOS,
        _nginx("return.conf"),
        'nginx 1 worker, return 200 "Hello, World!" (the C reference)',
    ),
    Server(
        "epoll-ref",
        "cc",
        HELLO_SCENARIOS,
        _epoll_ref,
        "bench/ref/epoll_responder.c: epoll, fixed response, no parsing (the kernel's loopback floor); "
        "closes after each response for close and ab",
    ),
    Server(
        "fulmen-static",
        "fulmen",
        STATIC_SCENARIOS,
        _fulmen_static,
        "fulmen, 1 worker, --static /static=bench/.data/static (served by the C++ core)",
    ),
    Server(
        "nginx-static-files",
        "nginx",
        STATIC_SCENARIOS,
        _nginx("static_files.conf"),
        "nginx 1 worker, location /static/ alias (sendfile, open_file_cache)",
    ),
    Server(
        "granian-static",
        "granian",
        STATIC_SCENARIOS,
        _granian_static,
        "granian, WSGI interface, 1 worker, --static-path-route /static --static-path-mount (its Rust static serving)",
    ),
    Server(
        "whitenoise-fulmen",
        "whitenoise",
        STATIC_SCENARIOS,
        _fulmen(_venv_fulmen, lambda l: "whitenoise_app:application"),
        "fulmen, 1 worker, the app wrapped in WhiteNoise (static files from Python)",
    ),
]
SERVER_BY_NAME = {s.name: s for s in SERVERS}
