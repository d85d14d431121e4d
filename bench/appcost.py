"""The apps' own cost: each scenario's WSGI app called in a loop, no server.

    taskset -c 0 bench/.venv/bin/python bench/appcost.py [--calls N] [--repeats R]

For each of the flask, django and django-heavy scenarios, builds the environ a
server would pass for `GET path` (a fresh dict and wsgi.input per call, as a
server makes them), calls the app, iterates its body and calls close() (PEP
3333), and prints the process CPU time per call: the median of R runs of N
calls after a warm-up. That is the floor under any server's CPU per request
for the scenario: what a server spends beyond it is its own work and the
kernel's. The loop's own Python (the dict copy, BytesIO, the iteration) is
included, so the floor is a little high, not low.
"""

import argparse
import io
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "apps")

# scenario: (module in apps/, attribute, path); the same as scenarios.SCENARIOS.
CASES = {
    "flask": ("flask_app", "application", "/"),
    "django": ("django_app", "application", "/"),
    "django-heavy": ("django_app", "application", "/items"),
}


def environ_for(path: str) -> dict:
    return {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "RAW_URI": path, "REQUEST_URI": path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_SOFTWARE": "appcost", "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000", "HTTP_HOST": "127.0.0.1:8000", "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.input_terminated": True,
    }


def measure(app, path: str, calls: int, repeats: int) -> float:
    base = environ_for(path)
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def one():
        env = dict(base)
        env["wsgi.input"] = io.BytesIO(b"")
        body = app(env, start_response)
        try:
            for _ in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    for _ in range(max(calls // 10, 100)):
        one()
    if not statuses or not statuses[-1].startswith("200"):
        raise SystemExit(f"appcost: {path} answered {statuses[-1:]}, not 200")
    runs = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(calls):
            one()
        runs.append((time.process_time() - t0) / calls * 1e6)
    return statistics.median(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per run (default 20000; /items gets a tenth)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per app; the median is printed (default 3)")
    args = parser.parse_args()
    sys.path.insert(0, APPS)
    os.environ.setdefault("BENCH_DATA", os.path.join(HERE, ".data"))
    if not os.path.exists(os.path.join(os.environ["BENCH_DATA"], "django.sqlite3")):
        # django-heavy's rows, made as run.py makes them before the servers start.
        import subprocess

        subprocess.run([sys.executable, "-m", "benchdjango.prepare"], cwd=APPS, check=True)
    print("| scenario | app CPU µs per call (median of %d × calls) |" % args.repeats)
    print("|---|---|")
    for name, (module, attribute, path) in CASES.items():
        app = getattr(__import__(module), attribute)
        calls = args.calls // 10 if path == "/items" else args.calls
        print(f"| {name} | {measure(app, path, calls, args.repeats):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
