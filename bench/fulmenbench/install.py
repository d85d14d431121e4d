"""bench/.venv: the peers from PyPI, each installed on its own, and fulmen from this repository."""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import BUILD, INSTALL_STATE, REPO, VENV, tail


@dataclass(frozen=True)
class Peer:
    name: str  # the distribution name (pip install NAME)
    hint: str = ""  # shown when it fails to install
    alternative: str | None = None  # tried when this one fails
    spec: str | None = None  # what pip is given, when not just the name (a version range)
    apt: str | None = None  # the Debian package it builds against: installed first when missing


PEERS = [
    Peer("gunicorn"),
    Peer("granian"),
    Peer("bjoern", hint="bjoern builds against libev: apt-get install libev-dev", apt="libev-dev"),
    Peer("fastpysgi", alternative="fastwsgi"),
    Peer("waitress"),
    Peer("uwsgi", hint="uWSGI compiles from source: needs cc and the Python headers"),
    Peer("flask"),
    Peer("django", spec="django>=5,<6", hint="the django scenarios' framework"),
    Peer("whitenoise"),
    Peer("matplotlib", hint="needed for the PNG plots only"),
]


def apt_missing(package: str) -> bool:
    """Whether dpkg says the package is not installed (False where there is no dpkg: pip will tell)."""
    if shutil.which("dpkg-query") is None:
        return False
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return not (proc.returncode == 0 and proc.stdout.strip().endswith(" installed"))


def apt_install(package: str, needed_by: str) -> bool:
    """apt-get install the package as root or through passwordless sudo, saying so; True if it is there now.

    Where neither is possible it prints the command to run and returns False:
    the peer that needs it is then reported as not installed, and the rest run.
    """
    command = ["apt-get", "install", "-y", package]
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        print(
            f"bench: {needed_by} needs {package}, and this is neither root nor passwordless sudo: to measure "
            f"{needed_by}, run `sudo {shlex.join(command)}`, and the next run installs it",
            flush=True,
        )
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # An empty or stale package list (a fresh machine) fails the install: update it and try once more.
    for attempt in ([], ["apt-get", "update", "-q"]):
        if attempt:
            print(f"bench: {shlex.join(prefix + attempt)} ...", flush=True)
            subprocess.run([*prefix, "env", "DEBIAN_FRONTEND=noninteractive", *attempt], capture_output=True, env=env)
        print(f"bench: {needed_by} needs {package}: {shlex.join(prefix + command)} ...", flush=True)
        proc = subprocess.run(
            [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", *command], capture_output=True, text=True, env=env
        )
        if proc.returncode == 0 and not apt_missing(package):
            return True
    print(
        f"bench: {shlex.join(prefix + command)} failed; {needed_by} will be reported as not installed:\n"
        + tail(proc.stdout + proc.stderr, 8),
        flush=True,
    )
    return False


def source_hash() -> str:
    """A hash of what a fulmen build is made of: reinstall when it changes."""
    digest = hashlib.sha256()
    roots = [REPO / "src", REPO / "python", REPO / "CMakeLists.txt", REPO / "pyproject.toml"]
    for root in roots:
        paths = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in paths:
            if "__pycache__" in path.parts or not path.exists():
                continue
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def setup_venv(args: argparse.Namespace) -> dict[str, Any]:
    """Create bench/.venv, install the peers and fulmen; return the install report."""
    python = VENV / "bin" / "python"
    if args.recreate_venv and VENV.exists():
        shutil.rmtree(VENV)
    if not python.exists():
        print(f"bench: creating {VENV.relative_to(REPO)} with {sys.executable} ({platform.python_version()})")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=False)
    state: dict[str, Any] = json.loads(INSTALL_STATE.read_text()) if INSTALL_STATE.exists() else {}
    installed = installed_versions(python)

    def pip_install(*spec: str) -> tuple[bool, str]:
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", *spec],
            capture_output=True,
            text=True,
        )
        return proc.returncode == 0, proc.stdout + proc.stderr

    for peer in PEERS:
        names = [peer.name] + ([peer.alternative] if peer.alternative else [])
        if any(n in installed for n in names):
            continue
        record = state.get(peer.name)
        installed_now = bool(peer.apt) and apt_missing(peer.apt) and apt_install(peer.apt, peer.name)
        missing = peer.apt if peer.apt and apt_missing(peer.apt) else None
        # A failure for want of a system package that is there now is not kept.
        stale = bool(record) and not missing and (installed_now or bool(record.get("missing")))
        if record and not record["ok"] and not args.reinstall and not stale:
            continue  # failed before: reported from the cache; --reinstall tries again
        errors = []
        for name in names:
            spec = peer.spec if name == peer.name and peer.spec else name
            print(f"bench: pip install {spec} ...", flush=True)
            ok, output = pip_install(spec)
            if ok:
                break
            errors.append(f"{name}: {tail(output, 15)}")
            print(f"bench: {name} failed to install" + (f" ({peer.hint})" if peer.hint else ""), flush=True)
        state[peer.name] = {
            "ok": ok,
            "error": None if ok else "\n\n".join(errors),
            "hint": peer.hint,
            "missing": None if ok else missing,
            "when": _dt.datetime.now().isoformat(timespec="seconds"),
        }

    digest = source_hash()
    record = state.get("fulmen") or {}
    if args.reinstall or record.get("source_hash") != digest or "fulmen" not in installed:
        print(f"bench: building and installing fulmen from {REPO} (source {digest}) ...", flush=True)
        ok, output = pip_install(
            "--force-reinstall",
            "--no-deps",
            # A build folder of its own, not the repo's build/, which others use.
            "--config-settings=build-dir=" + str(BUILD / "fulmen-{wheel_tag}"),
            str(REPO),
        )
        state["fulmen"] = {
            "ok": ok,
            "source_hash": digest if ok else None,
            "error": None if ok else tail(output, 30),
            "hint": "fulmen needs libuv (apt-get install libuv1-dev pkg-config) and cmake",
            "when": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        if not ok:
            print("bench: fulmen failed to build:\n" + tail(output, 30), flush=True)
    INSTALL_STATE.write_text(json.dumps(state, indent=2))
    return state


def installed_versions(python: Path | str) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
    )
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}
