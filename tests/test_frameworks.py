"""Real frameworks, unchanged, through the CLI: Flask, a minimal Django project and Falcon.

Every test runs once per framework against a real ``python -m fulmen`` process (conftest.py's
``serve_module``: one server per framework, checked after each test; ``serve`` for tests that need
their own server) and talks to it over real sockets, with ``requests`` where a client
library is the natural choice and with raw bytes where the exact framing matters (HEAD, 304).
The apps live in tests/apps (flask_app.py, falcon_app.py, djangoproj/); they know nothing about
fulmen.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests
from conftest import Server, read_response

pytest.importorskip("flask")
pytest.importorskip("django")
pytest.importorskip("falcon")

FRAMEWORKS = ["flask", "django", "falcon"]
TARGETS = {
    "flask": "flask_app:app",
    "django": "djangoproj.wsgi:application",
    "falcon": "falcon_app:app",
}
# An odd size, over 2 MiB: more than one sendfile() call and not a multiple of any block size.
FILE_SIZE = (5 << 19) + 12_345


@pytest.fixture(scope="session")
def static_file(tmp_path_factory) -> tuple[str, bytes]:
    data = random.Random(20240611).randbytes(FILE_SIZE)
    path = tmp_path_factory.mktemp("frameworks") / "static.bin"
    path.write_bytes(data)
    return str(path), data


@dataclass
class App:
    name: str
    srv: Server

    def path(self, p: str) -> str:
        """Django's URLs end with a slash (APPEND_SLASH); Flask's and Falcon's do not."""
        if self.name != "django" or p == "/":
            return p
        base, sep, query = p.partition("?")
        return base.rstrip("/") + "/" + sep + query

    def url(self, p: str) -> str:
        return self.srv.url(self.path(p))

    def get(self, p: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 10)
        return requests.get(self.url(p), **kw)

    def post(self, p: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return requests.post(self.url(p), **kw)


@pytest.fixture(scope="module", params=FRAMEWORKS)
def shared_app(request, serve_module, static_file) -> App:
    """One server per framework for the whole module (a start costs seconds on a busy machine)."""
    srv = serve_module(TARGETS[request.param], env={"FRAMEWORK_TEST_FILE": static_file[0]})
    return App(request.param, srv)


@pytest.fixture
def app(shared_app) -> Iterator[App]:
    """The shared server, checked after every test so a failure points at the test that caused it."""
    yield shared_app
    srv = shared_app.srv
    assert srv.proc.poll() is None, f"server exited ({srv.proc.returncode}):\n{srv.log}"
    srv.check_clean()
    srv.check_no_leaked_connections()


@pytest.fixture
def start_app(serve, static_file) -> Callable[..., App]:
    """For tests that need extra CLI arguments: start_app("flask", "--workers", "2")."""

    def start(name: str, *args: str) -> App:
        srv = serve(*args, TARGETS[name], env={"FRAMEWORK_TEST_FILE": static_file[0]})
        return App(name, srv)

    return start


def form_fields(fields: dict) -> dict[str, list[str]]:
    """Normalises the echoed form to {name: [values]} (Falcon gives a lone value as a string)."""
    out = {}
    for k, v in fields.items():
        if k == "csrfmiddlewaretoken":
            continue
        out[k] = v if isinstance(v, list) else [v]
    return out


def raw_exchange(app: App, raw: bytes, head_only: bool = False):
    with app.srv.connect() as s:
        s.sendall(raw)
        return read_response(s, head_only=head_only)


# --- routing -----------------------------------------------------------------------------------


def test_index(app):
    r = app.get("/")
    assert r.status_code == 200
    assert r.text == f"{app.name} index"
    assert r.headers["Content-Type"].startswith("text/")
    assert r.headers["Content-Length"] == str(len(r.content))


def test_path_parameter(app):
    r = app.get("/hello/world")
    assert r.status_code == 200 and r.text == "Hello, world!"
    # Percent-encoded UTF-8 in the path: the server hands the frameworks latin-1 native
    # strings (PEP 3333) and each framework re-decodes them as UTF-8.
    r = app.get("/hello/Zo%C3%AB%20K")
    # (Django's content_type="text/plain" names no charset: decode the UTF-8 bytes ourselves.)
    assert r.status_code == 200 and r.content.decode() == "Hello, Zo\u00eb K!"


def test_typed_path_parameter(app):
    r = app.get("/items/21")
    assert r.status_code == 200
    assert r.json() == {"id": 21, "double": 42}
    assert r.headers["Content-Type"].startswith("application/json")
    # A value the int converter rejects, and a 404 raised by the view itself.
    assert app.get("/items/abc").status_code == 404
    assert app.get("/items/101").status_code == 404


def test_query_string(app):
    r = app.get("/query?a=1&a=2&b=hello%20world&c=%C3%A9t%C3%A9&d=x%26y%3Dz")
    assert r.status_code == 200
    assert r.json() == {"a": ["1", "2"], "b": ["hello world"], "c": ["\u00e9t\u00e9"], "d": ["x&y=z"]}
    # requests builds the query string itself here.
    r = app.get("/query", params={"q": "spaces and + plus", "n": ["1", "2", "3"]})
    assert r.json() == {"q": ["spaces and + plus"], "n": ["1", "2", "3"]}


def test_django_append_slash_redirect(start_app):
    app = start_app("django")
    r = requests.get(app.srv.url("/hello/bob?x=1"), allow_redirects=False, timeout=10)
    assert r.status_code == 301
    assert r.headers["Location"] == "/hello/bob/?x=1"
    r = requests.get(app.srv.url("/hello/bob?x=1"), timeout=10)
    assert r.status_code == 200 and r.text == "Hello, bob!"
    assert [h.status_code for h in r.history] == [301]


# --- request bodies ----------------------------------------------------------------------------


def test_form_post_urlencoded(app):
    fields = {"name": "Zo\u00eb", "tags": ["a", "b"], "note": "x&y=z +1", "empty_not": "0"}
    with requests.Session() as s:
        data = dict(fields)
        if app.name == "django":
            # A real CSRF round trip: the cookie from one response, the token in the form.
            token = s.get(app.url("/csrf"), timeout=10).json()["token"]
            assert "csrftoken" in s.cookies
            data["csrfmiddlewaretoken"] = token
        r = s.post(app.url("/form"), data=data, timeout=10)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["content_type"] == "application/x-www-form-urlencoded"
    assert form_fields(got["fields"]) == {k: v if isinstance(v, list) else [v] for k, v in fields.items()}


def test_django_csrf_rejects_form_without_token(start_app):
    app = start_app("django")
    r = app.post("/form", data={"a": "1"})
    assert r.status_code == 403
    # The server is fine afterwards.
    assert app.get("/").text == "django index"


@pytest.mark.parametrize("size", [10_000, 3 << 20], ids=["small", "over-body-buffer"])
def test_multipart_upload(app, size):
    payload = random.Random(size).randbytes(size)
    r = app.post(
        "/upload",
        files={"file": ("data \u00e9.bin", payload, "application/octet-stream")},
        data={"title": "holiday", "tag": "x"},
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["size"] == size
    assert got["sha256"] == hashlib.sha256(payload).hexdigest()
    assert got["filename"] in ("data \u00e9.bin", "data_\u00e9.bin")  # Django may sanitise the name
    assert form_fields(got["fields"]) == {"title": ["holiday"], "tag": ["x"]}


def test_json_post(app):
    payload = {"s": "\u00fcn\u00efc\u00f6de \u2603", "n": 1.5, "list": [1, 2, {"deep": None}], "t": True}
    r = app.post("/json", json=payload)
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"received": payload, "method": "POST"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("size", [1_500_000, 2_300_000], ids=["1.5MB", "2.3MB"])
def test_large_json_post(start_app, framework, size):
    # Django reads the body with one wsgi.input.read(CONTENT_LENGTH) and Falcon likewise,
    # so this needs read(n) with n beyond what the server buffers before calling the app.
    # (Under Django's DATA_UPLOAD_MAX_MEMORY_SIZE of 2.5 MiB.) A short graceful timeout
    # keeps a stuck worker from holding the test for a minute.
    app = start_app(framework, "--graceful-timeout", "3")
    payload = {"blob": "x" * (size - 30), "n": [1, 2, 3]}
    assert len(json.dumps(payload)) == size - 2
    r = app.post("/json", json=payload, timeout=20)
    assert r.status_code == 201, r.text[:300]
    assert r.json()["received"] == payload


# --- errors ------------------------------------------------------------------------------------


def test_not_found_from_framework_router(app):
    r = app.get("/no/such/page")
    assert r.status_code == 404
    body = r.text
    if app.name == "falcon":
        assert r.json()["title"] == "404 Not Found"
    else:
        assert "Not Found" in body
    assert r.headers["Content-Length"] == str(len(r.content))


def test_method_not_allowed(app):
    r = app.get("/json")
    assert r.status_code == 405
    assert "POST" in r.headers.get("Allow", "")


def test_exception_in_view_gives_500(app):
    start = len(app.srv.lines)
    with requests.Session() as s:
        r = s.get(app.url("/boom"), timeout=10)
        assert r.status_code == 500
        # The framework logged the traceback (Flask and Falcon through wsgi.errors, Django
        # through its django.request logger on stderr); fulmen put it in its log.
        app.srv.wait_for("ZeroDivisionError", start=start)
        app.srv.wait_for(r"Traceback \(most recent call last\)", start=start)
        # The framework answered the 500 itself: the connection is still good.
        r2 = s.get(app.url("/"), timeout=10)
        assert r2.status_code == 200 and r2.text == f"{app.name} index"


def test_flask_logger_line_has_one_prefix(start_app):
    # Flask formats its own line ("[time] ERROR in module: message") and writes it to
    # wsgi.errors; fulmen writes it as it is, as gunicorn does, so there is no second prefix.
    app = start_app("flask")
    start = len(app.srv.lines)
    assert app.get("/log-error").text == "logged"
    m = app.srv.wait_for(r"flask logger says hi", start=start)
    line = m.string
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] ERROR in flask_app: flask logger says hi", line), line


# --- responses ---------------------------------------------------------------------------------


def test_streamed_response(app):
    n = 2000
    r = app.get(f"/stream?n={n}&prefix=row", stream=True)
    assert r.status_code == 200
    # No length known in advance: HTTP/1.1 chunked framing.
    assert r.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in r.headers
    body = b"".join(r.iter_content(chunk_size=None))
    assert body.decode() == "".join(f"row {i}\n" for i in range(n))


def test_streamed_response_http10(app):
    # An HTTP/1.0 client cannot take chunked: the body ends when the connection closes.
    status, headers, body, _ = raw_exchange(
        app, f"GET {app.path('/stream?n=50')} HTTP/1.0\r\nHost: t\r\n\r\n".encode())
    assert status == 200
    assert "transfer-encoding" not in headers
    assert body.decode() == "".join(f"line {i}\n" for i in range(50))


def test_head(app):
    get = app.get("/")
    with app.srv.connect() as s:
        # HEAD then GET on one connection: if any body bytes followed the HEAD answer, the
        # second response would not parse.
        s.sendall(f"HEAD {app.path('/')} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        status, headers, body, left = read_response(s, head_only=True)
        assert status == 200 and body == b""
        assert headers.get("content-length") in (None, get.headers["Content-Length"])
        s.sendall(f"HEAD {app.path('/stream?n=3')} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        status, headers, body, left = read_response(s, head_only=True)
        assert status == 200 and body == b""
        s.sendall(f"GET {app.path('/')} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        status, headers, body, left = read_response(s)
        assert status == 200 and body == f"{app.name} index".encode()
        assert left == b""
        s.settimeout(5)
        assert s.recv(1) == b"", "bytes after the last response"


def test_headers_and_cookies(app):
    with requests.Session() as s:
        r = s.get(app.url("/headers"), headers={"User-Agent": "fw-test/1.0"}, timeout=10)
        assert r.status_code == 200
        assert r.headers["X-Custom"] == app.name
        assert r.json() == {"host": f"127.0.0.1:{app.srv.port}", "user_agent": "fw-test/1.0"}
        assert s.cookies.get("session_id") == "abc123"


def test_file_response_uses_file_wrapper(app, static_file):
    _, data = static_file
    r = app.get("/file")
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(data))
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert len(r.content) == len(data)
    assert r.content == data


def test_flask_send_file_range_and_conditional(start_app, static_file):
    app = start_app("flask")
    _, data = static_file
    full = app.get("/file")
    assert full.content == data
    etag = full.headers["ETag"]
    # A byte range: werkzeug wraps the file_wrapper object in its own range iterator.
    r = app.get("/file", headers={"Range": "bytes=1000-70999"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 1000-70999/{len(data)}"
    assert r.content == data[1000:71000]
    r = app.get("/file", headers={"Range": f"bytes=-{100}"})
    assert r.status_code == 206 and r.content == data[-100:]
    # A conditional GET: 304 with no body, and the connection stays usable.
    with app.srv.connect() as s:
        s.sendall(f"GET /file HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n".encode())
        status, headers, body, _ = read_response(s)
        assert status == 304 and body == b""
        assert headers.get("etag") == etag
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body, _ = read_response(s)
        assert status == 200 and body == b"flask index"


# --- connections -------------------------------------------------------------------------------


def test_keepalive_session_50_requests(app):
    ports = set()
    with requests.Session() as s:
        csrf = None
        if app.name == "django":
            csrf = s.get(app.url("/csrf"), timeout=10).json()["token"]
        for i in range(50):
            kind = i % 5
            if kind == 0:
                r = s.get(app.url(f"/whoami?n={i}"), timeout=10)
                assert r.status_code == 200 and r.json()["n"] == str(i)
                ports.add(r.json()["remote_port"])
            elif kind == 1:
                data = {"i": str(i), "csrfmiddlewaretoken": csrf} if csrf else {"i": str(i)}
                r = s.post(app.url("/form"), data=data, timeout=10)
                assert r.status_code == 200, r.text
                assert form_fields(r.json()["fields"]) == {"i": [str(i)]}
            elif kind == 2:
                r = s.post(app.url("/json"), json={"i": i}, timeout=10)
                assert r.status_code == 201 and r.json()["received"] == {"i": i}
            elif kind == 3:
                r = s.get(app.url(f"/no/such/{i}"), timeout=10)
                assert r.status_code == 404
            else:
                r = s.get(app.url(f"/stream?n={i}"), timeout=10)
                assert r.status_code == 200 and r.text.count("\n") == i
            assert r.headers.get("Connection", "").lower() != "close", (i, r.headers)
        r = s.get(app.url("/boom"), timeout=10)
        assert r.status_code == 500
        r = s.get(app.url("/whoami?n=last"), timeout=10)
        ports.add(r.json()["remote_port"])
    # Every request, the 404s, the streams and the 500 included, went over one connection.
    assert len(ports) == 1, ports


def test_keepalive_http_client_same_socket(app):
    # The same with http.client, checking the client socket itself never changes.
    conn = http.client.HTTPConnection(app.srv.host, app.srv.port, timeout=10)
    try:
        conn.connect()
        local = conn.sock.getsockname()
        for i in range(50):
            conn.request("GET", app.path(f"/hello/n{i}"))
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == f"Hello, n{i}!".encode()
            assert conn.sock is not None and conn.sock.getsockname() == local, i
    finally:
        conn.close()


def test_concurrent_clients_two_workers(start_app):
    # Interleaved connections on two workers must each get their own answers.
    app = start_app("flask", "--workers", "2")
    errors: list[str] = []

    def client(t: int) -> None:
        try:
            with requests.Session() as s:
                for i in range(15):
                    body = {"t": t, "i": i, "pad": "p" * (t * 997 % 5000)}
                    r = s.post(app.url("/json"), json=body, timeout=20)
                    if r.status_code != 201 or r.json()["received"] != body:
                        errors.append(f"t{t} i{i}: {r.status_code} {r.text[:200]}")
                    r = s.get(app.url(f"/hello/t{t}i{i}"), timeout=20)
                    if r.text != f"Hello, t{t}i{i}!":
                        errors.append(f"t{t} i{i}: {r.status_code} {r.text[:200]}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"t{t}: {e!r}")

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors[:5]
