"""The scenarios: what each one requests, with which load, and what the answer must be.

A scenario is one row of SCENARIOS. Its `cases` makes the cases it runs (most
make one; sweep, ab and static make several), and its `groups` say which
servers run it: a server lists the groups it can serve (see servers.py), so a
new scenario in the "wsgi" group is run by every WSGI server with no other
change. The order of SCENARIOS is the order of --list and of the report.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .common import DATA, HELLO, ONE_MIB, TEN_K
from .prepare import prepare_django_db, write_file


@dataclass(frozen=True)
class Case:
    """One measured configuration: a request, a load generator, a number of connections."""

    scenario: str
    name: str  # unique: "hello", "sweep-c1000", "ab-n1000-c10"
    path: str
    connections: int
    tool: str = "wrk"
    lua: str = "report.lua"
    headers: tuple[str, ...] = ()  # wrk -H, for the measured load only
    ab_n: int = 0
    app: str = "wsgi_app"
    method: str = "GET"
    body: bytes | None = None  # what the probe request sends (the Lua script sends the same)
    probe_headers: tuple[tuple[str, str], ...] = ()  # and with which headers
    # The probe's answer: `expect` is the exact body (None: not checked), and
    # `check` raises ValueError when the body is wrong in another way.
    expect: bytes | None = None
    check: Callable[[bytes], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Scenario:
    name: str
    describe: str  # shown by --list and as the report's section title
    groups: frozenset[str]  # "wsgi": every WSGI server; "plain": needs no Python; ...
    cases: Callable[[str, argparse.Namespace], list[Case]]
    prepare: Callable[[], None] | None = None  # makes what it needs in bench/.data, before any server starts


def one(
    path: str, connections: Callable[[int], int] = lambda c: c, **fields: object
) -> Callable[[str, argparse.Namespace], list[Case]]:
    """A scenario of one case, named as the scenario, at --connections (or a function of it)."""
    return lambda name, args: [Case(name, name, path, connections(args.connections), **fields)]  # type: ignore[arg-type]


def check_1mib(data: bytes) -> None:
    if len(data) != 1 << 20:
        raise ValueError(f"probe GET /file: {len(data)} bytes, expected 1 MiB")


def check_json(data: bytes) -> None:
    json.loads(data)


DJANGO_ITEMS = 20  # the rows of bench/.data/django.sqlite3 (apps/benchdjango/prepare.py)
_ITEM_ROW = re.compile(rb'<tr class="item (?:odd|even)"><td>(\d+)</td><td>(item-\d+)</td>')


def check_items(data: bytes) -> None:
    """django-heavy: the page lists every row of the table, in order, in 2 to 5 KiB of HTML."""
    rows = _ITEM_ROW.findall(data)
    expected = [(str(i).encode(), f"item-{i:02d}".encode()) for i in range(1, DJANGO_ITEMS + 1)]
    if rows != expected:
        raise ValueError(f"probe GET /items: {len(rows)} item rows in {len(data)} bytes, expected {DJANGO_ITEMS}")
    if not 2048 <= len(data) <= 5120:
        raise ValueError(f"probe GET /items: {len(data)} bytes, expected 2 to 5 KiB")


def _api_request() -> tuple[bytes, dict[str, int]]:
    """flask-json-post's body, a JSON object of exactly 10 KiB, and the answer it must get."""
    items: list[dict[str, object]] = []
    while True:
        item = {"id": len(items) + 1, "name": f"item-{len(items) + 1:04d}", "qty": len(items) % 10}
        if len(json.dumps({"items": [*items, item], "note": ""}, separators=(",", ":"))) > 10240:
            break
        items.append(item)
    base = len(json.dumps({"items": items, "note": ""}, separators=(",", ":")))
    body = json.dumps({"items": items, "note": "x" * (10240 - base)}, separators=(",", ":")).encode()
    return body, {"count": len(items), "total": sum(int(i["qty"]) for i in items)}  # type: ignore[call-overload]


API_BODY, API_ANSWER = _api_request()
API_BODY_FILE = DATA / "api.json"  # what wrk/post_json.lua sends


def check_api(data: bytes) -> None:
    if json.loads(data) != API_ANSWER:
        raise ValueError(f"probe POST /api: {data[:80]!r}, expected {json.dumps(API_ANSWER)}")


def prepare_api_body() -> None:
    DATA.mkdir(exist_ok=True)
    write_file(API_BODY_FILE, API_BODY)


def sweep_cases(name: str, args: argparse.Namespace) -> list[Case]:
    return [Case(name, f"sweep-c{n}", "/", n, expect=HELLO) for n in args.sweep]


def ab_cases(name: str, args: argparse.Namespace) -> list[Case]:
    return [
        Case(name, f"ab-n{n}-c{k}", "/", k, tool="ab", ab_n=n, expect=HELLO)
        for n in args.ab_n
        for k in args.ab_c
        if k <= n
    ]


STATIC_SMALL = "/static/hello.txt"
STATIC_BIG = "/static/1mb.bin"


def static_cases(name: str, args: argparse.Namespace) -> list[Case]:
    """The static scenario: a 13-byte and a 1 MiB file, keep-alive and pipelined."""
    c = args.connections
    big = min(c, 32)  # as the "file" scenario: 1 MiB responses fill buffers fast
    return [
        Case(name, "static-13b", STATIC_SMALL, c, expect=HELLO),
        Case(name, "static-13b-pipeline", STATIC_SMALL, c, lua="pipeline.lua", expect=HELLO),
        Case(name, "static-1m", STATIC_BIG, big, expect=ONE_MIB),
        Case(name, "static-1m-pipeline", STATIC_BIG, big, lua="pipeline.lua", expect=ONE_MIB),
    ]


WSGI = "wsgi"  # served by every server that runs a WSGI app
PLAIN = "plain"  # needs no Python: the C references (nginx, epoll-ref) run it too
FILES = "files"  # a fixed body that nginx-static serves as a static file
THREADED = "threaded"  # an app that waits: only servers that run the app on threads
STATIC = "static"  # files under /static/, served by each server's own static-file path


def _groups(*names: str) -> frozenset[str]:
    return frozenset(names)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "hello", "GET /, 13 bytes with Content-Length, keep-alive", _groups(WSGI, PLAIN), one("/", expect=HELLO)
        ),
        Scenario(
            "hello-nocl",
            "GET /nocl, 13 bytes from a generator, no Content-Length, keep-alive",
            _groups(WSGI),
            one("/nocl", expect=HELLO),
        ),
        Scenario("10k", "GET /10k, 10 KiB body, keep-alive", _groups(WSGI, FILES), one("/10k", expect=TEN_K)),
        Scenario(
            "echo",
            "POST /echo with a 10 KiB body, sent back, keep-alive (wrk/post.lua)",
            _groups(WSGI),
            one("/echo", lua="post.lua", method="POST", body=TEN_K, expect=TEN_K),
        ),
        Scenario(
            "json", "GET /json, json.dumps of a small dict, keep-alive", _groups(WSGI), one("/json", check=check_json)
        ),
        Scenario(
            "flask",
            "GET / of a one-route Flask app (apps/flask_app.py), keep-alive",
            _groups(WSGI),
            one("/", app="flask_app", expect=HELLO),
        ),
        Scenario(
            "flask-json-post",
            "POST /api, 10 KiB of JSON to a Flask API (apps/flask_api.py): get_json, a sum, jsonify; keep-alive "
            "(wrk/post_json.lua)",
            _groups(WSGI),
            one(
                "/api",
                app="flask_api",
                method="POST",
                lua="post_json.lua",
                body=API_BODY,
                probe_headers=(("Content-Type", "application/json"),),
                check=check_api,
            ),
            prepare=prepare_api_body,
        ),
        Scenario(
            "django",
            "GET / of a Django 5 project (apps/django_app.py): a 13-byte view behind CommonMiddleware, keep-alive",
            _groups(WSGI),
            one("/", app="django_app", expect=HELLO),
        ),
        Scenario(
            "django-heavy",
            "GET /items of the Django project: an ORM query of 20 sqlite rows, a template loop (3.5 KiB of HTML), "
            "keep-alive",
            _groups(WSGI),
            one("/items", app="django_app", check=check_items),
            prepare=prepare_django_db,
        ),
        Scenario(
            "file",
            "GET /file, 1 MiB through wsgi.file_wrapper (nginx: static file), keep-alive",
            _groups(WSGI, FILES),
            one("/file", lambda c: min(c, 32), check=check_1mib),
        ),
        Scenario(
            "pipeline",
            "GET /, 16 requests per write (wrk/pipeline.lua)",
            _groups(WSGI, PLAIN),
            one("/", lua="pipeline.lua", expect=HELLO),
        ),
        Scenario(
            "close",
            "GET /, Connection: close (a new connection per request)",
            _groups(WSGI, PLAIN),
            one("/", headers=("Connection: close",), expect=HELLO),
        ),
        Scenario("sweep", "GET /, keep-alive, at each --sweep connection count", _groups(WSGI, PLAIN), sweep_cases),
        Scenario("ab", "ApacheBench (no -k) over the --ab-n x --ab-c matrix", _groups(WSGI, PLAIN), ab_cases),
        Scenario(
            "wait",
            "GET /wait: the app sleeps 20 ms (an app that waits); threaded servers only",
            _groups(THREADED),
            one("/wait", lambda c: 200, expect=HELLO),
        ),
        Scenario(
            "static",
            "GET /static/hello.txt (13 B) and /static/1mb.bin (1 MiB) as files, keep-alive and pipelined (16 deep)",
            _groups(STATIC),
            static_cases,
        ),
    ]
}
DEFAULT_SCENARIOS = [s for s in SCENARIOS if s != "ab"]
QUICK_SCENARIOS = ["hello", "echo", "file", "flask", "pipeline", "close"]


def scenarios_in(*groups: str) -> frozenset[str]:
    """The names of the scenarios in any of these groups."""
    return frozenset(s.name for s in SCENARIOS.values() if s.groups & set(groups))


def make_cases(args: argparse.Namespace) -> list[Case]:
    """The cases of the scenarios asked for, in the order they were asked for."""
    return [case for name in args.scenarios for case in SCENARIOS[name].cases(name, args)]
