"""Fapws4-style script mode, end to end: ``fulmen path/to/script.py`` serves the script's PATHS.

Every server here is a real ``python -m fulmen`` process (conftest.py's ``serve`` fixture, or
the module-scoped ``returns_srv`` built from the same ``Server`` class) talked to over real
sockets. The scripts live in tests/apps/scripts/; examples/hello.py is the Fapws4 seed script,
served unchanged, and examples/site.py the multi-prefix example.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import APPS, ROOT, Server, read_response, request

SCRIPTS = APPS / "scripts"
EXAMPLES = ROOT / "examples"
HELLO = EXAMPLES / "hello.py"
SITE = EXAMPLES / "site.py"

SEED = """\
from fapws4.base import Start_response, Environ

def hello(env, resp):
    return "hello world!"

PATHS = [('/', hello)]
"""
HTML = "text/html; charset=utf-8"
UNICODE = "héllo wörld ✓ 日本語 🚀"  # as in scripts/returns.py
# An odd size over 256 KiB: more than one sendfile() round on a small socket buffer.
DATA_SIZE = (1 << 18) + 4_321


def get(
    srv: Server, path: str, method: str = "GET", body: bytes = b"", headers: str = ""
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 request on its own connection: (status, headers, body) with the framing visible."""
    raw = f"{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}"
    if body:
        raw += f"Content-Length: {len(body)}\r\n"
    status, hdrs, data, _ = request(srv, raw.encode("latin-1") + b"\r\n" + body)
    return status, hdrs, data


# --------------------------------------------------------------------------
# The seed script, unchanged
# --------------------------------------------------------------------------


def test_seed_example_is_byte_identical() -> None:
    assert HELLO.read_text(encoding="utf-8") == SEED


def test_seed_script_serves_every_path(serve) -> None:
    srv = serve(str(HELLO))  # an absolute path, from cwd tests/apps
    for path in ["/", "/index.html", "/a/b/c", "/x?y=1", "/caf%C3%A9", "//double"]:
        status, headers, body = get(srv, path)
        assert (status, body) == (200, b"hello world!"), path
        assert headers["content-type"] == HTML
        assert headers["content-length"] == "12"
    status, headers, body = get(srv, "/form", "POST", b"ignored=1")
    assert (status, body) == (200, b"hello world!")
    # HEAD: the same head, no body.
    with srv.connect() as s:
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET /again HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body, _ = read_response(s, head_only=True)
        assert (status, headers["content-length"], body) == (200, "12", b"")
        status, _, body, _ = read_response(s)  # keep-alive: the next request on the same socket
        assert (status, body) == (200, b"hello world!")


def test_seed_script_with_relative_path_and_requests(serve) -> None:
    srv = serve("../../examples/hello.py")  # relative to the start directory (tests/apps)
    r = requests.get(srv.url("/anything"), timeout=10)
    assert r.status_code == 200 and r.text == "hello world!"
    assert r.headers["Content-Type"] == HTML


def test_seed_script_with_two_workers(serve) -> None:
    srv = serve("--workers", "2", str(HELLO))
    srv.wait_for(r"Booting worker")
    first = len(srv.lines)
    deadline = time.monotonic() + 20
    while len(re.findall(r"Booting worker", srv.log)) < 2:
        assert time.monotonic() < deadline, srv.log
        time.sleep(0.1)
    assert len(srv.worker_pids()) == 2
    with requests.Session() as session:
        for i in range(20):
            r = session.get(srv.url(f"/{i}"), timeout=10)
            assert (r.status_code, r.text) == (200, "hello world!")
    for i in range(20):  # fresh connections, spread over the workers
        assert requests.get(srv.url(f"/fresh/{i}"), timeout=10).text == "hello world!"
    assert "Traceback" not in "\n".join(srv.lines[first:])


# --------------------------------------------------------------------------
# Return values (scripts/returns.py, one server for the module)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> tuple[Path, bytes]:
    data = random.Random(3333).randbytes(DATA_SIZE)
    path = tmp_path_factory.mktemp("script_mode") / "data.bin"
    path.write_bytes(data)
    return path, data


@pytest.fixture(scope="module")
def returns_srv(data_file) -> Iterator[Server]:
    path, _ = data_file
    srv = Server(
        ["--bind", "127.0.0.1:0", str(SCRIPTS / "returns.py")], APPS, {"SCRIPT_TEST_FILE": str(path)}
    )
    try:
        yield srv
    finally:
        rc = srv.stop()
        srv.check_clean()
        assert rc in (0, -signal.SIGTERM), f"server exit status {rc}:\n{srv.log}"


# path -> (status, content type, body, framing): "length" (Content-Length) or "chunked".
RETURNS = {
    "/str": (200, HTML, b"plain str", "length"),
    "/unicode": (200, HTML, UNICODE.encode("utf-8"), "length"),
    "/empty_str": (200, HTML, b"", "length"),
    "/bytes": (200, HTML, b"raw \xff\x00 bytes", "length"),
    "/list_str": (200, HTML, ("abc" + UNICODE).encode("utf-8"), "length"),
    "/list_mixed": (200, HTML, b"str bytes end", "length"),
    "/tuple_bytes": (200, HTML, b"tuple", "length"),
    "/empty_list": (200, HTML, b"", "length"),
    "/gen": (200, HTML, "one two thrée".encode("utf-8"), "chunked"),
    "/gen_single": (200, HTML, b"only", "chunked"),
    "/gen_empty": (200, HTML, b"", "length"),
    "/bytesio": (200, HTML, b"in memory, no descriptor", None),
    "/none": (200, HTML, b"", "length"),
    "/custom": (201, "application/json", b'{"ok": true}', "length"),
    "/custom_404": (404, "text/plain; charset=utf-8", b"custom missing", "length"),
    "/wsgi": (200, "text/plain", b"a plain WSGI app", "length"),
    "/write": (200, "text/plain", b"legacy write, then the body", "chunked"),
}


@pytest.mark.parametrize("path", list(RETURNS))
def test_return_value(returns_srv: Server, path: str) -> None:
    want_status, want_type, want_body, framing = RETURNS[path]
    status, headers, body = get(returns_srv, path)
    assert (status, body) == (want_status, want_body)
    assert headers["content-type"] == want_type
    if framing == "length":
        assert headers.get("content-length") == str(len(want_body))
        assert "transfer-encoding" not in headers
    elif framing == "chunked":
        assert headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in headers


def test_custom_headers_and_no_content(returns_srv: Server) -> None:
    status, headers, _ = get(returns_srv, "/custom")
    assert headers["x-handler"] == "custom"
    status, headers, body = get(returns_srv, "/resp_none")
    assert (status, body, headers["x-handler"]) == (204, b"", "none")
    assert "content-length" not in headers and "transfer-encoding" not in headers


def test_unicode_through_requests(returns_srv: Server) -> None:
    r = requests.get(returns_srv.url("/unicode"), timeout=10)
    assert r.encoding == "utf-8" and r.text == UNICODE


def test_file_object_is_sent_whole(returns_srv: Server, data_file) -> None:
    _, data = data_file
    status, headers, body = get(returns_srv, "/file")
    assert status == 200 and headers["content-type"] == HTML
    assert headers["content-length"] == str(len(data))
    assert body == data


def test_file_object_with_resp_headers(returns_srv: Server, data_file) -> None:
    _, data = data_file
    status, headers, body = get(returns_srv, "/file_resp")
    assert (status, headers["content-type"], headers["x-file"]) == (200, "application/octet-stream", "yes")
    assert body == data


@pytest.mark.parametrize("offset", [0, 1, 1000, 65_537, DATA_SIZE - 1, DATA_SIZE, DATA_SIZE + 10])
def test_file_object_after_seek(returns_srv: Server, data_file, offset: int) -> None:
    _, data = data_file
    status, headers, body = get(returns_srv, f"/file_seek?{offset}")
    assert status == 200
    assert headers["content-length"] == str(len(data[offset:]))
    assert body == data[offset:]


@pytest.mark.parametrize("read", [0, 10, 100_000])
def test_file_object_after_buffered_read(returns_srv: Server, data_file, read: int) -> None:
    # f.read(10) on a buffered file moves the descriptor a whole buffer on; the body starts at f.tell().
    _, data = data_file
    status, headers, body = get(returns_srv, f"/file_read?{read}")
    want = data[read:]
    assert status == 200 and headers["content-length"] == str(len(want))
    assert body == want


def test_head_of_file_and_generator(returns_srv: Server, data_file) -> None:
    _, data = data_file
    for path, length in [("/file", str(len(data))), ("/file_seek?7", str(len(data) - 7)), ("/gen", None)]:
        with returns_srv.connect() as s:
            s.sendall(f"HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\nGET /str HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            status, headers, body, _ = read_response(s, head_only=True)
            assert (status, headers.get("content-length"), body) == (200, length, b""), path
            assert read_response(s)[::2][:2] == (200, b"plain str"), path  # no body bytes were sent


def test_sent_files_are_closed(returns_srv: Server, data_file) -> None:
    path, data = data_file
    for _ in range(10):
        assert requests.get(returns_srv.url("/file"), timeout=10).content == data
        assert len(requests.get(returns_srv.url("/file_seek?5"), timeout=10).content) == len(data) - 5
        assert requests.head(returns_srv.url("/file_read"), timeout=10).status_code == 200
    for _ in range(5):  # clients that leave in the middle of the file
        with returns_srv.connect() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n")
            s.recv(100)
    pids = returns_srv.worker_pids()
    assert pids

    def open_copies() -> int:
        n = 0
        for pid in pids:
            fd_dir = Path(f"/proc/{pid}/fd")
            for fd in fd_dir.iterdir():
                try:
                    if os.readlink(fd) == str(path):
                        n += 1
                except OSError:
                    pass  # closed while we looked
        return n

    deadline = time.monotonic() + 5
    while open_copies():
        assert time.monotonic() < deadline, f"{open_copies()} descriptors of {path} still open"
        time.sleep(0.05)


def test_request_body_and_environ(returns_srv: Server) -> None:
    r = requests.post(returns_srv.url("/post"), data=b"\x00posted \xff body", timeout=10)
    assert (r.status_code, r.content) == (200, b"\x00posted \xff body")
    r = requests.put(returns_srv.url("/env/a/b?x=1&y=2"), timeout=10)
    assert r.json() == {
        "SCRIPT_NAME": "/env", "PATH_INFO": "/a/b", "QUERY_STRING": "x=1&y=2", "REQUEST_METHOD": "PUT"
    }


@pytest.mark.parametrize(
    "path, logged",
    [
        ("/boom", r"ZeroDivisionError: division by zero"),
        ("/gen_boom", r"KeyError: 'raised inside the generator'"),
        ("/type_error", r"TypeError: 'int' object is not iterable"),
        ("/surrogate", r"UnicodeEncodeError: 'utf-8' codec can't encode character '\\udc80'"),
    ],
)
def test_handler_exception_is_500_and_server_keeps_serving(serve, path: str, logged: str) -> None:
    srv = serve(str(SCRIPTS / "returns.py"))
    status, headers, body = get(srv, path)
    assert status == 500 and b"Internal Server Error" in body
    srv.wait_for(rf"\[ERROR\] .*{re.escape(path)}$")
    srv.wait_for(logged)
    if path in ("/boom", "/gen_boom"):
        srv.wait_for(r"^Traceback \(most recent call last\):")
        srv.wait_for(r'File ".*returns\.py", line \d+, in ')
    # The same worker goes on serving, on a new connection and on a kept-alive one.
    assert get(srv, "/str")[::2] == (200, b"plain str")
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(srv.url("/str"), timeout=10).text == "plain str"
            assert session.get(srv.url(path), timeout=10).status_code == 500
    assert srv.proc.poll() is None


# --------------------------------------------------------------------------
# Routing: longest prefix, whole segments, SCRIPT_NAME / PATH_INFO
# --------------------------------------------------------------------------

ROUTES = [
    # path, handler, SCRIPT_NAME, PATH_INFO
    ("/", "root", "", "/"),
    ("/other/x", "root", "", "/other/x"),
    ("/api", "api", "/api", ""),
    ("/api/", "api", "/api", "/"),
    ("/api/x/y", "api", "/api", "/x/y"),
    ("/apix", "root", "", "/apix"),  # not a segment boundary
    ("/api/v2", "v2", "/api/v2", ""),  # registered as "/api/v2/"
    ("/api/v2/", "v2", "/api/v2", "/"),
    ("/api/v2/users/7", "v2", "/api/v2", "/users/7"),
    ("/api/v2x", "api", "/api", "/v2x"),
    ("/api/v", "api", "/api", "/v"),
    ("/a", "a", "/a", ""),
    ("/a/api", "a", "/a", "/api"),
    ("/ab", "root", "", "/ab"),
    ("/static/img/logo.png", "img", "/static/img", "/logo.png"),
    ("/static/image", "root", "", "/static/image"),
    ("/static", "root", "", "/static"),
    ("/api%2Fx", "api", "/api", "/x"),  # PATH_INFO is percent-decoded, matching too
    ("/api/caf%C3%A9", "api", "/api", "/caf\u00c3\u00a9"),  # bytes as latin-1 (PEP 3333)
    ("/caf%C3%A9", "cafe", "/caf\u00c3\u00a9", ""),  # a non-ASCII prefix: SCRIPT_NAME likewise
    ("/caf%C3%A9/menu", "cafe", "/caf\u00c3\u00a9", "/menu"),
    ("/caf%C3%A9s", "root", "", "/caf\u00c3\u00a9s"),
]


@pytest.mark.parametrize("root_path", ["", "/mount/point"])
def test_routing(serve, root_path: str) -> None:
    args = ["--root-path", root_path] if root_path else []
    srv = serve(*args, str(SCRIPTS / "routing.py"))
    for path, handler, script_name, path_info in ROUTES:
        status, headers, body = get(srv, root_path + path + "?q=" + handler)
        assert status == 200, (path, body)
        assert json.loads(body) == {
            "handler": handler,
            "script_name": root_path + script_name,
            "path_info": path_info,
            "query": "q=" + handler,
        }, path
    if root_path:
        # The root path itself, with and without its slash: the "/" handler.
        for path, path_info in [(root_path, ""), (root_path + "/", "/")]:
            got = json.loads(get(srv, path)[2])
            assert (got["handler"], got["script_name"], got["path_info"]) == ("root", root_path, path_info)


def test_no_catch_all_is_404(serve) -> None:
    srv = serve(str(SCRIPTS / "nocatchall.py"))
    assert get(srv, "/only")[::2] == (200, b"only: /only|")
    assert get(srv, "/only/x/")[::2] == (200, b"only: /only|/x/")
    assert get(srv, "/deep/er")[::2] == (200, b"deep: /deep/er|")
    assert get(srv, "/deep/er/x")[::2] == (200, b"deep: /deep/er|/x")
    for path in ["/", "/onl", "/onlyx", "/deep", "/deep/e", "/deep/err", "/favicon.ico", "/x/only"]:
        status, headers, body = get(srv, path)
        assert status == 404, path
        assert headers["content-type"].startswith("text/plain")
        assert body == b"404 Not Found\n"
    # A 404 keeps the connection usable.
    with requests.Session() as session:
        assert session.get(srv.url("/nope"), timeout=10).status_code == 404
        assert session.get(srv.url("/only"), timeout=10).text == "only: /only|"
    assert "Traceback" not in srv.log


# --------------------------------------------------------------------------
# A full WSGI application (Flask) mounted at a prefix
# --------------------------------------------------------------------------


@pytest.mark.parametrize("root_path", ["", "/pre"])
def test_flask_mounted_at_prefix(serve, root_path: str) -> None:
    pytest.importorskip("flask")
    args = ["--root-path", root_path] if root_path else []
    srv = serve(*args, str(SCRIPTS / "flask_mount.py"))
    base = srv.url(root_path)
    mount = root_path + "/flask"

    r = requests.get(base + "/flask/", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "script_root": mount,
        "path": "/",
        "index": mount + "/",
        "user": mount + "/user/ann",
        "external": f"http://{srv.host}:{srv.port}{mount}/user/ann",
    }
    r = requests.get(base + "/flask/user/zoë", timeout=10)
    assert r.json() == {"name": "zoë", "url": mount + "/user/zo%C3%AB", "path": "/user/zoë"}

    r = requests.get(base + "/flask/go", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"].endswith(mount + "/user/bob")
    r = requests.get(base + "/flask/go", timeout=10)  # followed: back through the mount
    assert r.json()["name"] == "bob"

    r = requests.post(base + "/flask/echo", data={"a": "1", "b": "é"}, timeout=10)
    assert r.json() == {"form": {"a": "1", "b": "é"}}

    assert requests.get(base + "/flask/missing", timeout=10).status_code == 404  # Flask's own 404
    # "/flask" without the slash: Flask's redirect to the mount's root.
    r = requests.get(base + "/flask", allow_redirects=False, timeout=10)
    assert r.status_code in (301, 308) and r.headers["Location"].endswith(mount + "/")

    # Outside the mount: the plain handler.
    assert requests.get(base + "/flaskx", timeout=10).text == f"root: {root_path}|/flaskx"
    assert requests.get(base + "/", timeout=10).text == f"root: {root_path}|/"


# --------------------------------------------------------------------------
# Malformed scripts: one line on stderr, exit status 2
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "script, problem",
    [
        ("bad_no_paths.py", r"the script defines neither PATHS .* nor a WSGI callable named 'application'"),
        ("bad_not_list.py", r"PATHS must be a list of \(prefix, handler\) pairs, got dict"),
        ("bad_not_pair.py", r"PATHS\[1\]: expected a \(prefix, handler\) pair, got \('/x', "),
        ("bad_prefix.py", r"PATHS\[0\]: the prefix 'api' must start with '/'"),
        ("bad_handler.py", r"PATHS\[1\]: the handler for '/about' is not callable \(it is str\)"),
        ("bad_empty.py", r"PATHS is empty"),
        ("bad_duplicate.py", r"PATHS\[1\]: the prefix '/api' is already used by PATHS\[0\]"),
    ],
)
def test_malformed_paths_exit_2(script: str, problem: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULMEN_")}
    result = subprocess.run(
        [sys.executable, "-m", "fulmen", "--bind", "127.0.0.1:0", script],
        cwd=SCRIPTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"fulmen: error: {script}: "), lines[0]
    assert re.search(problem, lines[0]), lines[0]
    assert "Listening" not in result.stdout + result.stderr


# --------------------------------------------------------------------------
# examples/site.py, end to end
# --------------------------------------------------------------------------


def check_site(srv: Server, root_path: str = "", api: str = "flask") -> None:
    base = srv.url(root_path)

    r = requests.get(base + "/", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == HTML
    for href in ["/hello/world", "/download", "/form", "/api/", "/stream"]:
        assert f'href="{root_path}{href}"' in r.text
    r = requests.get(base + "/no/such/page", timeout=10)
    assert r.status_code == 404 and "/no/such/page" in r.text

    r = requests.get(base + "/hello/J%C3%BCrgen%20%3Cb%3E", timeout=10)
    assert r.status_code == 200 and r.text == "<p>Hello, Jürgen &lt;b&gt;!</p>\n"
    assert requests.get(base + "/hello", timeout=10).text == "<p>Hello, stranger!</p>\n"
    assert "Hello" not in requests.get(base + "/helloworld", timeout=10).text  # not the /hello prefix

    sample = (EXAMPLES / "static" / "sample.txt").read_bytes()
    status, headers, body = get(srv, root_path + "/download")
    assert (status, body) == (200, sample)
    assert headers["content-length"] == str(len(sample))
    assert headers["content-disposition"] == 'attachment; filename="sample.txt"'
    assert headers["content-type"] == "text/plain; charset=utf-8"

    r = requests.get(base + "/form", timeout=10)
    assert r.status_code == 200 and "<form" in r.text and f'action="{root_path}/form"' in r.text
    r = requests.post(base + "/form", data={"name": "Ada Lovelace", "colour": "<blue> & é"}, timeout=10)
    assert r.status_code == 200
    assert "<li>name = Ada Lovelace</li>" in r.text
    assert "<li>colour = &lt;blue&gt; &amp; é</li>" in r.text
    r = requests.post(base + "/form", json={"name": "x"}, timeout=10)
    assert r.status_code == 415

    r = requests.get(base + "/api/", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.json() == {"api": api, "hello": f"{root_path}/api/hello/world"}
    r = requests.get(base + "/api/hello/fulmen", timeout=10)
    assert r.json() == {"hello": "fulmen"}
    assert requests.get(base + "/api/nope/nope", timeout=10).status_code == 404

    status, headers, body = get(srv, root_path + "/stream")
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body == b"".join(f"line {i}\n".encode() for i in range(1, 6))
    assert "Traceback" not in srv.log


def test_site_example(serve) -> None:
    pytest.importorskip("flask")
    check_site(serve(str(SITE)))


def test_site_example_with_root_path_and_workers(serve) -> None:
    pytest.importorskip("flask")
    check_site(serve("--root-path", "/site", "--workers", "2", str(SITE)), root_path="/site")


def test_site_example_without_flask(serve, tmp_path: Path) -> None:
    # A "flask" package that fails to import, first on the path: site.py must fall back.
    (tmp_path / "flask").mkdir()
    (tmp_path / "flask" / "__init__.py").write_text('raise ImportError("flask is hidden by the test")\n')
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(APPS)])}
    check_site(serve(str(SITE), env=env), api="wsgi")


def test_hello_wsgi_example(serve) -> None:
    srv = serve("--chdir", str(EXAMPLES), "hello_wsgi:application")
    r = requests.get(srv.url("/"), timeout=10)
    assert (r.status_code, r.text) == (200, "hello world!\n")
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    srv2 = serve("hello_wsgi", cwd=EXAMPLES)  # MODULE alone means MODULE:application
    assert requests.get(srv2.url("/"), timeout=10).text == "hello world!\n"


# --------------------------------------------------------------------------
# A script with no PATHS that defines `application` is a WSGI script
# --------------------------------------------------------------------------


def test_wsgi_script_without_paths_serves_its_application() -> None:
    # uWSGI's --wsgi-file habit: `fulmen examples/hello_wsgi.py` serves the file's callable.
    srv = Server(["--bind", "127.0.0.1:0", str(ROOT / "examples" / "hello_wsgi.py")], cwd=ROOT)
    try:
        for path in ("/", "/any/path?x=1"):
            r = requests.get(f"http://127.0.0.1:{srv.port}{path}", timeout=10)
            assert r.status_code == 200
            assert r.text == "hello world!\n"
    finally:
        srv.stop()


def test_wsgi_script_with_a_non_callable_application_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("application = 42\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULMEN_")}
    result = subprocess.run(
        [sys.executable, "-m", "fulmen", "--bind", "127.0.0.1:0", "app.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 4, result
    assert result.stderr.splitlines()[-1] == (
        "fulmen: error: failed to load application 'app.py': 'application' is not callable (got int)"
    )
