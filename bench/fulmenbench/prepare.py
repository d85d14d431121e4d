"""bench/.data and bench/.build: the files the servers serve and the reference responder."""

from __future__ import annotations

import subprocess

from .common import BENCH, BUILD, DATA, HELLO, tail
from .scenarios import ONE_MIB, TEN_K


def prepare_files() -> None:
    DATA.mkdir(exist_ok=True)
    for name, content in (("hello.txt", HELLO), ("10k.bin", TEN_K), ("1mb.bin", ONE_MIB)):
        path = DATA / name
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
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
        path = folder / name
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
