"""The command line: options, defaults, and main(), which bootstraps bench/.venv and re-runs inside it."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import shlex
import sys
from pathlib import Path
from typing import Any

from .common import BENCH, BUILD, IN_VENV_FLAG, INSTALL_STATE, RUN_PY, VENV, tail
from .install import setup_venv
from .measure import run_all
from .prepare import prepare_files, prepare_static_files
from .results import save
from .scenarios import DEFAULT_SCENARIOS, QUICK_SCENARIOS, SCENARIOS
from .servers import SERVER_BY_NAME, SERVERS

DESCRIPTION = "fulmen's benchmark pipeline: one command, all servers, all scenarios."


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_ints(text: str) -> list[int]:
    return [int(item) for item in parse_list(text)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description=DESCRIPTION,
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
        for name, scenario in SCENARIOS.items():
            print(f"  {name:18} {scenario.describe}")
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
        os.execve(python, [python, str(RUN_PY), *(sys.argv[1:] if argv is None else argv)], env)
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
    for name in args.scenarios:
        prepare = SCENARIOS[name].prepare
        if prepare is not None:
            prepare()

    outcome = run_all(args, install)
    path = save(args, outcome, install, command, started)
    print(f"bench: wrote {path} and {path.with_suffix('.md')} (+ plots)", flush=True)
    return 1 if any(f["kind"] == "failure" for f in outcome["failures"]) and not outcome["runs"] else 0
