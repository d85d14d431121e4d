"""CpuGroup: the cgroup that holds the server's processes, for its CPU time in ns."""

from __future__ import annotations

import time
from pathlib import Path


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
