"""The load generators: wrk's and ab's command lines, and the parsing of their output."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from typing import Any

from .common import HOST, WRK_DIR, tail
from .scenarios import Case


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
    """The numbers of wrk's BENCH_JSON line (printed by wrk/report.lua); ValueError if none."""
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
    """The numbers of ab's report; ValueError if a required line is missing."""

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
