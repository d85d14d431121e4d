"""The results file: the day's JSON, merged with earlier runs, and what it records of the machine."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import socket
import subprocess
from pathlib import Path
from typing import Any

from .common import REPO
from .install import PEERS
from .report import summarize, write_markdown, write_plots


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
