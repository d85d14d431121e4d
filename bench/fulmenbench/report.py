"""The report: the markdown tables and the PNG plots, made from a day's JSON data."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from .scenarios import SCENARIOS
from .servers import SERVERS


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
        describe = SCENARIOS[scenario].describe if scenario in SCENARIOS else ""
        out(f"## {case}: {describe}, {rows[0]['connections']} connections")
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
