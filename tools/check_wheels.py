"""Installs each built wheel into a clean venv and checks that it serves without libuv.

For every Python tag given (e.g. ``311``), the one wheel ``dist/fulmen-*-cpTAG-*.whl``
is installed into a new venv made by that Python, with nothing else in it; its
extension must not need any libuv at run time (``ldd``), ``auditwheel show`` must
give it a manylinux tag, and the installed ``fulmen`` command must serve
``examples/hello_wsgi.py`` over a real socket and stop cleanly on SIGTERM.

    python tools/check_wheels.py --auditwheel .venv-tools/bin/auditwheel 310 311 312 313
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LISTEN = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


def fail(message: str) -> None:
    print(f"check_wheels: {message}", file=sys.stderr)
    sys.exit(1)


def python_for(tag: str) -> str:
    return subprocess.run([str(ROOT / "tools" / "pythons.sh"), "path", tag], check=True, capture_output=True,
                          text=True).stdout.strip()


def serve_once(venv: Path, cwd: Path) -> str:
    """Starts the venv's fulmen on hello_wsgi.py, GETs / and stops it; returns the body."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FULMEN_", "PYTHON"))}
    proc = subprocess.Popen([str(venv / "bin" / "fulmen"), "--bind", "127.0.0.1:0",
                             str(ROOT / "examples" / "hello_wsgi.py")],
                            cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        log = []
        for line in proc.stderr:
            log.append(line)
            m = LISTEN.search(line)
            if m:
                break
        else:
            fail(f"{venv}: the server exited ({proc.wait()}) before listening:\n{''.join(log)}")
        with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/", timeout=10) as r:
            body = r.read().decode()
            software = r.headers.get("Server", "")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        if rc != 0:
            fail(f"{venv}: the server exited {rc} after SIGTERM")
        return f"{body!r} (Server: {software})"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check(tag: str, auditwheel: str) -> None:
    wheels = sorted((ROOT / "dist").glob(f"fulmen-*-cp{tag}-cp{tag}-*.whl"))
    if len(wheels) != 1:
        fail(f"expected one wheel for cp{tag} in dist/, found {[w.name for w in wheels]}")
    wheel = wheels[0]
    venv = ROOT / "build" / "wheel-check" / tag
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python_for(tag), "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    str(wheel)], check=True)
    installed = subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import fulmen._core as c, sys; print(c.__file__); print(sys.version.split()[0])"],
                               cwd=venv, check=True, capture_output=True, text=True).stdout.split()
    module, version = installed[0], installed[1]
    ldd = subprocess.run(["ldd", module], check=True, capture_output=True, text=True).stdout
    if "libuv" in ldd:
        fail(f"{wheel.name}: the extension needs libuv at run time:\n{ldd}")
    show = subprocess.run([auditwheel, "show", str(wheel)], check=True, capture_output=True, text=True).stdout
    tags = re.search(r'platform tag:\s*"([^"]+)"', " ".join(show.split()))
    if not tags or not tags.group(1).startswith("manylinux"):
        fail(f"{wheel.name}: auditwheel show gives no manylinux tag:\n{show}")
    body = serve_once(venv, venv)
    if not body.startswith("'hello world!\\n'"):
        fail(f"{wheel.name}: unexpected body {body}")
    size = wheel.stat().st_size / 1024
    print(f"{wheel.name} ({size:.0f} KiB): auditwheel show: {tags.group(1)}; ldd: no libuv; "
          f"installed alone on Python {version} and served GET / -> {body}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--auditwheel", required=True)
    parser.add_argument("tags", nargs="+")
    args = parser.parse_args()
    for tag in args.tags:
        check(tag, args.auditwheel)


if __name__ == "__main__":
    main()
