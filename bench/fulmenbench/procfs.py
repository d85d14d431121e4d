"""/proc: the server's process tree, its CPU time in ticks and its memory."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


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
