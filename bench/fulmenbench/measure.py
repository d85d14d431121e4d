"""Measuring: one run of the load generator with the server's CPU time and memory, and the loop over
every (server, case)."""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import BUILD
from .install import PEERS, installed_versions
from .load import ab_command, run_load, wrk_command
from .procfs import CLK_TCK, Sampler, cpu_busy, cpu_ticks, process_tree, status_kb
from .running import Running, ServerFailed
from .scenarios import Case, make_cases
from .servers import SERVER_BY_NAME, Server


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
        args.repeats * (args.warmup + args.duration + 1.5) if c.tool == "wrk" else 10 * args.repeats for _, c in plan
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


def interleaved(plan: list[tuple[Server, Case]], repeats: int) -> list[tuple[Server, Case, int]]:
    """The order of the runs: case by case, and within a case repeat by repeat, every server once.

    Servers measured minutes apart meet different weather on a shared machine (the host's other
    guests, thermal state); taking the servers in turn for each repeat spreads that drift over all
    of them, so a case's medians compare servers under the same conditions.
    """
    cases = list(dict.fromkeys(case for _, case in plan))  # in plan order, each once
    return [
        (server, case, repeat)
        for case in cases
        for repeat in range(1, repeats + 1)
        for server, c in plan
        if c == case
    ]


def measure_plan(
    plan: list[tuple[Server, Case]],
    args: argparse.Namespace,
    runs: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    total_runs: int,
) -> None:
    failed: set[tuple[str, str]] = set()  # (server, case) that failed once: not started again
    for index, (server, case, repeat) in enumerate(interleaved(plan, args.repeats), start=1):
        if (server.name, case.name) in failed:
            continue
        label = f"{server.name} {case.name}"
        running: Running | None = None
        try:
            running = Running(server, case, args)
            running.wait_ready()
            # Warm-up: same load, shorter, not recorded (every start is a cold server).
            if case.tool == "wrk" and args.warmup > 0:
                measure(running, case, args, args.warmup)
            elif case.tool == "ab":
                measure(running, case, args, 0, ab_n=min(case.ab_n, 1000))
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
            failed.add((server.name, case.name))
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
                    # fulmen's own warnings under load are worth keeping (once per case).
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
