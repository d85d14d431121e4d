"""bench/.data and bench/.build: the files the servers serve and the reference responder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from .common import APPS, BENCH, BUILD, DATA, HELLO, ONE_MIB, TEN_K, tail


def write_file(path: Path, content: bytes) -> None:
    """Write path unless it already holds exactly content."""
    if not path.exists() or path.read_bytes() != content:
        path.write_bytes(content)


def prepare_files() -> None:
    DATA.mkdir(exist_ok=True)
    for name, content in (("hello.txt", HELLO), ("10k.bin", TEN_K), ("1mb.bin", ONE_MIB)):
        write_file(DATA / name, content)
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
    for name, content in (("hello.txt", HELLO), ("1mb.bin", ONE_MIB)):
        write_file(folder / name, content)


def prepare_django_db() -> None:
    """bench/.data/django.sqlite3: the django-heavy scenario's table, built by the app's own models."""
    if importlib.util.find_spec("django") is None:
        print("bench: django is not installed in bench/.venv: django-heavy cannot be prepared", flush=True)
        return
    DATA.mkdir(exist_ok=True)
    env = dict(os.environ, BENCH_DATA=str(DATA))
    env.pop("PYTHONPATH", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "benchdjango.prepare"], cwd=APPS, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        print("bench: python -m benchdjango.prepare failed:\n" + tail(proc.stdout + proc.stderr), flush=True)
