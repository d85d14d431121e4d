"""Paths, the address and the bodies that every part of the pipeline shares."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
RUN_PY = BENCH / "run.py"  # the entry point, re-run inside the venv
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
TEN_K = b"x" * 10240
ONE_MIB = bytes(range(256)) * 4096


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
