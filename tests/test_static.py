"""Static files served by the C++ core (issue 11), end to end over real sockets.

One module-scoped server mounts a temporary folder at /static (``--static``) in front of
tests/apps/basic.py; other servers cover the switches (symlinks, dotfiles, no index) and
script mode. Every assertion is about bytes on the wire: status, headers, body, and what the
worker process holds open (/proc/<pid>/fd).
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Server, ServerPool, read_response, recv_until_closed, request, server_env

HELLO = b"hello, world\n"  # 13 bytes, the bench's small file
OUTSIDE = b"secret outside the folder\n"
BIG_SIZE = (1 << 20) + 12_345  # over the inline limit: sent with sendfile
CSS = b"body { color: #123456 }\n" * 20
CSS_BR = b"\x1b\x00fake-brotli-bytes" * 3  # the server never decodes: any bytes do
CSS_GZ = gzip.compress(CSS, mtime=0)


def build_site(root: Path) -> Path:
    """The served folder, a secret next to it, and symlinks in and out."""
    public = root / "public"
    (public / "sub" / "deeper").mkdir(parents=True)
    (root / "outside.txt").write_bytes(OUTSIDE)
    (public / "hello.txt").write_bytes(HELLO)
    (public / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (public / "empty.txt").write_bytes(b"")
    (public / "site.css").write_bytes(CSS)
    (public / "site.css.br").write_bytes(CSS_BR)
    (public / "site.css.gz").write_bytes(CSS_GZ)
    (public / "only-gz.js").write_bytes(b"console.log(1)\n")
    (public / "only-gz.js.gz").write_bytes(gzip.compress(b"console.log(1)\n", mtime=0))
    (public / "app.3f2a9c1b.js").write_bytes(b"hashed()\n")
    (public / "data.foo").write_bytes(b"foo data\n")
    (public / "noext").write_bytes(b"no extension\n")
    (public / ".secret").write_bytes(b"dotfile\n")
    (public / "sub" / "index.html").write_bytes(b"<p>index</p>\n")
    (public / "sub" / "page.html").write_bytes(b"<p>page</p>\n")
    (public / "sub" / "deeper" / "up").symlink_to("../page.html")  # stays inside
    (public / "sub" / "deeper" / "note.txt").write_bytes(b"deeper\n")
    (public / "link_in").symlink_to("sub/page.html")
    (public / "link_dir").symlink_to("sub")
    (public / "link_out").symlink_to("../outside.txt")
    (public / "link_abs").symlink_to(str(root / "outside.txt"))
    (public / "link_root").symlink_to("/etc/passwd")
    (public / "sub" / "escape").symlink_to("../../outside.txt")
    (public / "loop").symlink_to("loop")
    return public


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_site(tmp_path_factory.mktemp("static"))


@pytest.fixture(scope="module")
def srv(site: Path) -> Server:
    pool = ServerPool()
    server = pool.start(
        "--static", f"/static={site}", "--static-max-age", "60", "--static-immutable",
        "--static-index", "index.html", "--static-mime", "foo=application/x-foo", "basic:application",
    )
    yield server
    pool.finish()


def get(srv: Server, path: str, headers: dict[str, str] | None = None, method: str = "GET",
        body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection (Connection: close)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with srv.connect() as s:
        s.sendall(raw)
        status, hdrs, data, _ = read_response(s, head_only=method == "HEAD")
    return status, hdrs, data


def http_date(path: Path) -> str:
    return email.utils.formatdate(int(path.stat().st_mtime), usegmt=True)


# --------------------------------------------------------------------------
# GET, HEAD and the response head
# --------------------------------------------------------------------------


def test_small_file(srv: Server, site: Path) -> None:
    status, h, body = get(srv, "/static/hello.txt")
    assert status == 200 and body == HELLO
    assert h["content-type"] == "text/plain; charset=utf-8"
    assert h["content-length"] == "13"
    assert h["last-modified"] == http_date(site / "hello.txt")
    assert h["etag"].startswith('"') and h["etag"].endswith('"') and not h["etag"].startswith("W/")
    assert h["accept-ranges"] == "bytes"
    assert h["cache-control"] == "public, max-age=60"
    assert "date" in h and h["server"] == "fulmen"
    assert "vary" not in h  # no precompressed sibling


def test_big_file_and_etag_from_inode_size_mtime(srv: Server, site: Path) -> None:
    status, h, body = get(srv, "/static/big.bin")
    assert status == 200 and body == (site / "big.bin").read_bytes()
    assert h["content-type"] == "application/octet-stream"
    st = (site / "big.bin").stat()
    assert h["etag"] == f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


def test_mime_table_and_additions(srv: Server) -> None:
    cases = {
        "/static/site.css": "text/css; charset=utf-8",
        "/static/app.3f2a9c1b.js": "text/javascript; charset=utf-8",
        "/static/sub/page.html": "text/html; charset=utf-8",
        "/static/data.foo": "application/x-foo",
        "/static/noext": "application/octet-stream",
    }
    for path, expected in cases.items():
        status, h, _ = get(srv, path, {"Accept-Encoding": "identity"})
        assert (status, h["content-type"]) == (200, expected), path


def test_head_has_the_get_head_and_no_body(srv: Server) -> None:
    _, get_h, _ = get(srv, "/static/big.bin")
    with srv.connect() as s:
        s.sendall(b"HEAD /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        status, h, body, _ = read_response(s, head_only=True)
        assert status == 200 and h["content-length"] == str(BIG_SIZE) and h["etag"] == get_h["etag"]
        # The next response follows the head at once: the HEAD answer had no body bytes.
        status, _, body, _ = read_response(s)
        assert status == 200 and body == HELLO


def test_immutable_for_hashed_names_only(srv: Server) -> None:
    _, h, _ = get(srv, "/static/app.3f2a9c1b.js")
    assert h["cache-control"] == "public, max-age=31536000, immutable"
    _, h, _ = get(srv, "/static/site.css")
    assert h["cache-control"] == "public, max-age=60"


def test_not_found_is_the_cores_and_other_paths_reach_the_app(srv: Server) -> None:
    status, h, body = get(srv, "/static/missing.txt")
    assert (status, body) == (404, b"404 Not Found\n")  # basic.py would answer b"not found"
    assert get(srv, "/staticx")[2] == b"not found"  # a sibling path is the app's
    assert get(srv, "/")[2] == b"hello world!\n"
    # The prefix is matched as the app would see the path: decoded.
    assert get(srv, "/st%61tic/hello.txt")[2] == HELLO
    # An encoded '/' after the prefix is no separator: not under the mount.
    assert get(srv, "/static%2fhello.txt")[2] == b"not found"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_get_405_with_allow(srv: Server, method: str) -> None:
    with srv.connect() as s:
        s.sendall(f"{method} /static/hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello".encode()
                  + b"GET /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        status, h, body, _ = read_response(s)
        assert status == 405 and h["allow"] == "GET, HEAD" and body == b"405 Method Not Allowed\n"
        # The body was skipped and the connection kept: the next request is answered.
        status, _, body, _ = read_response(s)
        assert (status, body) == (200, HELLO)


# --------------------------------------------------------------------------
# Conditional requests
# --------------------------------------------------------------------------


def test_if_none_match_gives_304(srv: Server) -> None:
    _, h, _ = get(srv, "/static/hello.txt")
    etag = h["etag"]
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        status, h304, body = get(srv, "/static/hello.txt", {"If-None-Match": value})
        assert status == 304 and body == b"", value
        assert h304["etag"] == etag and h304["cache-control"] == "public, max-age=60"
        assert "content-length" not in h304
    status, _, body = get(srv, "/static/hello.txt", {"If-None-Match": '"nope"'})
    assert (status, body) == (200, HELLO)


def test_if_modified_since(srv: Server, site: Path) -> None:
    mtime = int((site / "hello.txt").stat().st_mtime)
    same = email.utils.formatdate(mtime, usegmt=True)
    later = email.utils.formatdate(mtime + 3600, usegmt=True)
    earlier = email.utils.formatdate(mtime - 3600, usegmt=True)
    assert get(srv, "/static/hello.txt", {"If-Modified-Since": same})[0] == 304
    assert get(srv, "/static/hello.txt", {"If-Modified-Since": later})[0] == 304
    assert get(srv, "/static/hello.txt", {"If-Modified-Since": earlier})[:3:2] == (200, HELLO)
    assert get(srv, "/static/hello.txt", {"If-Modified-Since": "yesterday"})[0] == 200
    # The two obsolete HTTP-date forms are accepted too (RFC 9110 5.6.7).
    t = time.gmtime(mtime + 3600)
    rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", t)
    asctime = time.strftime("%a %b ", t) + f"{t.tm_mday:2d}" + time.strftime(" %H:%M:%S %Y", t)
    assert get(srv, "/static/hello.txt", {"If-Modified-Since": rfc850})[0] == 304, rfc850
    assert get(srv, "/static/hello.txt", {"If-Modified-Since": asctime})[0] == 304, asctime
    t = time.gmtime(mtime - 3600)
    asctime = time.strftime("%a %b ", t) + f"{t.tm_mday:2d}" + time.strftime(" %H:%M:%S %Y", t)
    assert get(srv, "/static/hello.txt", {"If-Modified-Since": asctime})[0] == 200, asctime
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
    assert get(srv, "/static/hello.txt", {"If-None-Match": '"x"', "If-Modified-Since": later})[0] == 200


def test_if_match_and_if_unmodified_since_give_412(srv: Server, site: Path) -> None:
    _, h, _ = get(srv, "/static/hello.txt")
    assert get(srv, "/static/hello.txt", {"If-Match": '"other"'})[0] == 412
    assert get(srv, "/static/hello.txt", {"If-Match": h["etag"]})[0] == 200
    assert get(srv, "/static/hello.txt", {"If-Match": f"W/{h['etag']}"})[0] == 412  # strong comparison
    mtime = int((site / "hello.txt").stat().st_mtime)
    assert get(srv, "/static/hello.txt", {"If-Unmodified-Since": email.utils.formatdate(mtime - 10, usegmt=True)})[0] == 412
    assert get(srv, "/static/hello.txt", {"If-Unmodified-Since": email.utils.formatdate(mtime, usegmt=True)})[0] == 200


# --------------------------------------------------------------------------
# Ranges
# --------------------------------------------------------------------------


def test_single_ranges(srv: Server, site: Path) -> None:
    data = (site / "big.bin").read_bytes()
    size = len(data)
    cases = {
        "bytes=0-9": (0, 9),
        "bytes=1000-": (1000, size - 1),
        "bytes=-5": (size - 5, size - 1),
        f"bytes=-{size * 2}": (0, size - 1),
        "bytes=100-99999999999": (100, size - 1),
        f"bytes={size - 1}-{size - 1}": (size - 1, size - 1),
    }
    for spec, (first, last) in cases.items():
        status, h, body = get(srv, "/static/big.bin", {"Range": spec})
        assert status == 206, spec
        assert h["content-range"] == f"bytes {first}-{last}/{size}", spec
        assert body == data[first : last + 1] and h["content-length"] == str(last - first + 1), spec
    # Small (in-memory) files range the same way.
    status, h, body = get(srv, "/static/hello.txt", {"Range": "bytes=7-11"})
    assert (status, body, h["content-range"]) == (206, b"world", "bytes 7-11/13")


def test_unsatisfiable_and_ignored_ranges(srv: Server) -> None:
    for spec in (f"bytes={BIG_SIZE}-", f"bytes={BIG_SIZE + 10}-{BIG_SIZE + 20}", "bytes=-0"):
        status, h, body = get(srv, "/static/big.bin", {"Range": spec})
        assert status == 416 and h["content-range"] == f"bytes */{BIG_SIZE}", spec
    status, h, _ = get(srv, "/static/empty.txt", {"Range": "bytes=0-"})
    assert status == 416 and h["content-range"] == "bytes */0"
    # Several ranges, malformed ones and other units: the whole file.
    for spec in ("bytes=0-1,5-6", "bytes=5-1", "bytes=x-y", "items=0-1", "bytes 0-1"):
        status, h, body = get(srv, "/static/big.bin", {"Range": spec})
        assert status == 200 and len(body) == BIG_SIZE and "content-range" not in h, spec
    # HEAD ignores Range (it is defined for GET).
    status, h, _ = get(srv, "/static/hello.txt", {"Range": "bytes=0-1"}, method="HEAD")
    assert status == 200 and h["content-length"] == "13"


def test_if_range(srv: Server, site: Path) -> None:
    _, h, _ = get(srv, "/static/big.bin")
    etag, last_modified = h["etag"], h["last-modified"]
    assert get(srv, "/static/big.bin", {"Range": "bytes=0-3", "If-Range": etag})[0] == 206
    assert get(srv, "/static/big.bin", {"Range": "bytes=0-3", "If-Range": last_modified})[0] == 206
    status, _, body = get(srv, "/static/big.bin", {"Range": "bytes=0-3", "If-Range": '"stale"'})
    assert status == 200 and len(body) == BIG_SIZE
    assert get(srv, "/static/big.bin", {"Range": "bytes=0-3", "If-Range": f"W/{etag}"})[0] == 200
    older = email.utils.formatdate(int((site / "big.bin").stat().st_mtime) - 1, usegmt=True)
    assert get(srv, "/static/big.bin", {"Range": "bytes=0-3", "If-Range": older})[0] == 200


def test_sparse_2gib_file_ranged_at_its_end(tmp_path: Path, serve: Callable[..., Server]) -> None:
    folder = tmp_path / "huge"
    folder.mkdir()
    size = (2 << 30) + 7  # past 2^31: offsets and lengths are 64-bit throughout
    with open(folder / "sparse.bin", "wb") as f:
        f.truncate(size - 7)
        f.seek(size - 7)
        f.write(b"THE END")
    server = serve("--static", f"/h={folder}", "basic:application")
    status, h, body = get(server, "/h/sparse.bin", {"Range": "bytes=-7"})
    assert (status, body) == (206, b"THE END")
    assert h["content-range"] == f"bytes {size - 7}-{size - 1}/{size}"
    status, h, body = get(server, "/h/sparse.bin", {"Range": f"bytes={(2 << 30) - 3}-{(2 << 30) + 2}"})
    assert status == 206 and body == b"\0\0\0THE"
    status, h, _ = get(server, "/h/sparse.bin", method="HEAD")
    assert status == 200 and h["content-length"] == str(size)


# --------------------------------------------------------------------------
# Precompressed siblings
# --------------------------------------------------------------------------


def test_precompressed_siblings_by_q_value(srv: Server) -> None:
    cases = [
        ("br", "br", CSS_BR),
        ("gzip", "gzip", CSS_GZ),
        ("gzip, deflate, br", "br", CSS_BR),
        ("gzip;q=1.0, br;q=0.5", "gzip", CSS_GZ),
        ("br;q=0, gzip", "gzip", CSS_GZ),
        ("BR;Q=0.9, GZIP;q=0.8", "br", CSS_BR),
        ("*", "br", CSS_BR),
        ("identity", None, CSS),
        ("br;q=0, gzip;q=0", None, CSS),
        ("identity;q=1, gzip;q=0.5", None, CSS),
        ("deflate", None, CSS),
        (None, None, CSS),
    ]
    etags = {}
    for accept, coding, expected in cases:
        status, h, body = get(srv, "/static/site.css", {"Accept-Encoding": accept} if accept else {})
        assert status == 200 and body == expected, accept
        assert h.get("content-encoding") == coding, accept
        assert h["vary"] == "Accept-Encoding", accept  # also on the identity answer
        assert h["content-type"] == "text/css; charset=utf-8", accept
        assert h["content-length"] == str(len(expected))
        etags.setdefault(coding, h["etag"])
        assert etags[coding] == h["etag"]
    assert len(set(etags.values())) == 3  # each representation has its own validator


def test_only_gzip_sibling(srv: Server) -> None:
    status, h, body = get(srv, "/static/only-gz.js", {"Accept-Encoding": "br, gzip"})
    assert h["content-encoding"] == "gzip" and gzip.decompress(body) == b"console.log(1)\n"
    status, h, body = get(srv, "/static/only-gz.js", {"Accept-Encoding": "br"})
    assert "content-encoding" not in h and body == b"console.log(1)\n" and h["vary"] == "Accept-Encoding"


def test_ranges_and_304_apply_to_the_encoded_representation(srv: Server) -> None:
    _, h, _ = get(srv, "/static/site.css", {"Accept-Encoding": "br"})
    br_etag = h["etag"]
    status, h, body = get(srv, "/static/site.css", {"Accept-Encoding": "br", "Range": "bytes=0-3"})
    assert status == 206 and body == CSS_BR[:4] and h["content-range"] == f"bytes 0-3/{len(CSS_BR)}"
    assert h["content-encoding"] == "br"
    status, h, _ = get(srv, "/static/site.css", {"Accept-Encoding": "br", "If-None-Match": br_etag})
    assert status == 304 and h["etag"] == br_etag and h["vary"] == "Accept-Encoding"
    # The br validator does not match the identity representation.
    status, _, body = get(srv, "/static/site.css", {"If-None-Match": br_etag})
    assert (status, body) == (200, CSS)


# --------------------------------------------------------------------------
# Safety: no way out of the folder
# --------------------------------------------------------------------------

ESCAPES = [
    "/static/../outside.txt",
    "/static/sub/../../outside.txt",
    "/static/%2e%2e/outside.txt",
    "/static/%2E%2E/outside.txt",
    "/static/.%2e/outside.txt",
    "/static/%2e./outside.txt",
    "/static/sub%2f..%2f..%2foutside.txt",
    "/static/sub/..%2f..%2foutside.txt",
    "/static/%2fetc%2fpasswd",
    "/static/sub%2fpage.html",
    "/static/..%5coutside.txt",
    "/static/sub%5c..%5c..%5coutside.txt",
    "/static/%00",
    "/static/hello.txt%00.png",
    "/static/%c0%ae%c0%ae/outside.txt",
    "/static/%c0%af..%c0%afoutside.txt",
    "/static/%e0%80%ae%e0%80%ae/outside.txt",
    "/static/%c1%9c",
    "/static/%ff",
    "/static/%ed%a0%80",
    "/static//etc/passwd",
    "/static//../outside.txt",
    "/static/sub//page.html",
    "/static/./hello.txt",
    "/static/.secret",
    "/static/%2esecret",
    "/static/sub/.",
    "/static/link_out",
    "/static/link_abs",
    "/static/link_root",
    "/static/sub/escape",
    "/static/loop",
    "/static/link_dir/../../outside.txt",
    "/static/%",
    "/static/%2",
    "/static/%zz",
    "/static/hello.txt%",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_escape_spellings_are_refused(srv: Server, path: str) -> None:
    status, _, body = get(srv, path)
    assert status in (400, 404), path
    assert OUTSIDE not in body and b"root:" not in body and b"dotfile" not in body


@pytest.mark.parametrize("raw", [b"/static/..\\outside.txt", b"/static/sub\\..\\..\\outside.txt",
                                 b"http://test/static/../outside.txt", b"http://test/static/%2e%2e/outside.txt"])
def test_escapes_in_raw_and_absolute_form_targets(srv: Server, raw: bytes) -> None:
    status, _, body, _ = request(srv, b"GET " + raw + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    assert status in (400, 404) and OUTSIDE not in body


def test_symlinks_that_stay_inside_are_followed(srv: Server) -> None:
    assert get(srv, "/static/link_in")[:3:2] == (200, b"<p>page</p>\n")
    assert get(srv, "/static/link_dir/page.html")[:3:2] == (200, b"<p>page</p>\n")
    assert get(srv, "/static/sub/deeper/up")[:3:2] == (200, b"<p>page</p>\n")


def test_follow_symlinks_and_dotfiles_when_asked(site: Path, serve: Callable[..., Server]) -> None:
    server = serve("--static", f"/s={site}", "--static-follow-symlinks", "--static-dotfiles", "basic:application")
    assert get(server, "/s/link_out")[:3:2] == (200, OUTSIDE)
    assert get(server, "/s/sub/escape")[:3:2] == (200, OUTSIDE)
    assert get(server, "/s/.secret")[:3:2] == (200, b"dotfile\n")
    # The path itself still cannot climb out, whatever the switches.
    for path in ("/s/../outside.txt", "/s/%2e%2e/outside.txt", "/s/sub%2f..%2f..%2foutside.txt", "/s/..%5coutside.txt"):
        status, _, body = get(server, path)
        assert status in (400, 404) and OUTSIDE not in body, path
    assert get(server, "/s/loop")[0] == 404


# --------------------------------------------------------------------------
# Directories
# --------------------------------------------------------------------------


def test_directory_index_and_redirect(srv: Server) -> None:
    assert get(srv, "/static/sub/")[:3:2] == (200, b"<p>index</p>\n")
    status, h, _ = get(srv, "/static")  # the mount itself, without its '/'
    assert status == 301 and h["location"] == "/static/"
    assert get(srv, "/static/")[0] == 404  # the folder has no index.html
    status, h, _ = get(srv, "/static/sub?x=1")
    assert status == 301 and h["location"] == "/static/sub/?x=1"
    assert get(srv, "/static/hello.txt/")[0] == 404  # a file is no directory
    assert get(srv, "/static/sub/deeper/")[0] == 404  # no index.html there


def test_directories_are_404_without_index(site: Path, serve: Callable[..., Server]) -> None:
    server = serve("--static", f"/s={site}", "basic:application")
    for path in ("/s", "/s/", "/s/sub", "/s/sub/"):
        assert get(server, path)[0] == 404, path
    assert get(server, "/s/sub/index.html")[:3:2] == (200, b"<p>index</p>\n")


# --------------------------------------------------------------------------
# Pipelining and concurrency
# --------------------------------------------------------------------------


def test_pipelined_static_requests(srv: Server, site: Path) -> None:
    big = (site / "big.bin").read_bytes()
    _, h, _ = get(srv, "/static/hello.txt")
    reqs = [
        ("GET /static/hello.txt", {}, 200, HELLO),
        ("GET /static/big.bin", {"Range": "bytes=10-19"}, 206, big[10:20]),
        ("GET /static/missing", {}, 404, b"404 Not Found\n"),
        ("HEAD /static/big.bin", {}, 200, b""),
        ("GET /static/hello.txt", {"If-None-Match": h["etag"]}, 304, b""),
        ("GET /environ", {}, 200, None),
        ("GET /static/big.bin", {}, 200, big),
        ("GET /static/site.css", {"Accept-Encoding": "gzip"}, 200, CSS_GZ),
    ] * 3
    raw = b"".join(
        (f"{line} HTTP/1.1\r\nHost: t\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n").encode()
        for line, hdrs, _, _ in reqs
    )
    with srv.connect() as s:
        s.sendall(raw)
        for line, _, status, expected in reqs:
            got_status, _, body, _ = read_response(s, head_only=line.startswith("HEAD"))
            assert got_status == status, line
            if expected is not None:
                assert body == expected, line
            else:
                assert b'"PATH_INFO": "/environ"' in body


def test_concurrent_static_and_app_requests(srv: Server, site: Path) -> None:
    big_digest = hashlib.sha256((site / "big.bin").read_bytes()).hexdigest()
    errors: list[str] = []

    def client(n: int) -> None:
        try:
            with srv.connect(timeout=30) as s:
                for i in range(30):
                    kind = (n + i) % 3
                    path = ["/static/hello.txt", "/static/big.bin", f"/environ/{n}/{i}"][kind]
                    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                    status, _, body, _ = read_response(s)
                    ok = status == 200 and (
                        body == HELLO if kind == 0 else
                        hashlib.sha256(body).hexdigest() == big_digest if kind == 1 else
                        f'"PATH_INFO": "/environ/{n}/{i}"'.encode() in body)
                    if not ok:
                        errors.append(f"client {n} request {i} {path}: {status}")
        except Exception as error:  # noqa: BLE001 -- collected and reported by the main thread
            errors.append(f"client {n}: {error!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]


# --------------------------------------------------------------------------
# Files that change: replaced, rewritten, deleted
# --------------------------------------------------------------------------


def slow_client(srv: Server, path: str) -> socket.socket:
    """A connection with a tiny receive buffer that has sent its request and read nothing yet."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(20)
    s.connect((srv.host, srv.port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return s


def wait_for_body(srv: Server, path: str, expected: bytes, timeout: float = 5.0) -> None:
    """Asks until the body is the expected one (the cache revalidates at most once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = get(srv, path)
        if status == 200 and body == expected:
            return
        assert time.monotonic() < deadline, f"still {status} {body[:40]!r} after {timeout} s"
        time.sleep(0.1)


def test_file_replaced_while_being_served(srv: Server, site: Path) -> None:
    old = os.urandom(8 << 20)
    new = os.urandom(3 << 20)
    target = site / "replaced.bin"
    target.write_bytes(old)
    assert get(srv, "/static/replaced.bin")[2] == old
    s = slow_client(srv, "/static/replaced.bin")
    with s:
        first = s.recv(4096)  # the response has started; most of it is still in the server
        tmp = site / ".replaced.tmp"
        tmp.write_bytes(new)
        os.replace(tmp, target)  # how deploys replace files: atomically
        rest = bytearray(first)
        head_end = rest.find(b"\r\n\r\n")
        while len(rest) < head_end + 4 + len(old):
            chunk = s.recv(1 << 16)
            assert chunk, "connection closed inside the old body"
            rest.extend(chunk)
        assert bytes(rest[head_end + 4 :]) == old  # the old content, whole
    wait_for_body(srv, "/static/replaced.bin", new)


@pytest.mark.parametrize("name,sizes", [("swap-small.txt", (1000, 3000)), ("swap-big.bin", (600_000, 2_000_000))])
def test_never_a_mix_while_replaced_in_a_loop(srv: Server, site: Path, name: str, sizes: tuple[int, int]) -> None:
    versions = [bytes([65 + i]) * n for i, n in enumerate(sizes)]
    target = site / name
    target.write_bytes(versions[0])
    stop = threading.Event()

    def replacer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            tmp = site / f".{name}.{i}"
            tmp.write_bytes(versions[i % 2])
            os.replace(tmp, target)
            time.sleep(0.01)

    t = threading.Thread(target=replacer)
    t.start()
    seen = set()
    try:
        with srv.connect(timeout=20) as s:
            for _ in range(150):
                s.sendall(f"GET /static/{name} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                status, h, body, _ = read_response(s)
                assert status == 200 and body in versions, (status, len(body))
                assert int(h["content-length"]) == len(body)
                seen.add(body[:1])
    finally:
        stop.set()
        t.join()
    assert seen  # at least one version seen; which ones depends on timing


def test_file_truncated_in_place_while_served_closes_the_connection(srv: Server, site: Path) -> None:
    target = site / "shrinks.bin"
    target.write_bytes(os.urandom(8 << 20))
    s = slow_client(srv, "/static/shrinks.bin")
    with s:
        s.recv(4096)
        os.truncate(target, 0)
        data = recv_until_closed(s, timeout=20)
        assert len(data) < 8 << 20  # cut short and closed: never a hang, never other bytes
    # The worker is fine and serves the file as it is now.
    wait_for_body(srv, "/static/shrinks.bin", b"")


def open_paths(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


def test_file_deleted_between_requests(srv: Server, site: Path) -> None:
    target = site / "deleted.bin"
    data = os.urandom(BIG_SIZE)
    target.write_bytes(data)
    assert get(srv, "/static/deleted.bin")[2] == data
    (pid,) = srv.worker_pids()
    assert str(target) in open_paths(pid)  # cached: the descriptor is kept for the next request
    target.unlink()
    deadline = time.monotonic() + 5
    while get(srv, "/static/deleted.bin")[0] != 404:
        assert time.monotonic() < deadline, "a deleted file is still served after 5 s"
        time.sleep(0.1)
    held = [p for p in open_paths(pid) if p.startswith(str(target))]
    assert not held, held  # no stale descriptor (it would read "... (deleted)")


def test_idle_descriptors_are_closed(srv: Server, site: Path) -> None:
    target = site / "idle.bin"
    target.write_bytes(os.urandom(BIG_SIZE))
    assert get(srv, "/static/idle.bin")[0] == 200
    (pid,) = srv.worker_pids()
    assert str(target) in open_paths(pid)
    deadline = time.monotonic() + 6
    while str(target) in open_paths(pid):
        assert time.monotonic() < deadline, "an unused file stays open"
        time.sleep(0.1)


# --------------------------------------------------------------------------
# Settings and script mode
# --------------------------------------------------------------------------


def fulmen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fulmen", *args], cwd=cwd, env=server_env(),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args,message", [
    (["--static", "public"], "--static: expected URL_PREFIX=DIR"),
    (["--static", "/s=missing-dir"], "--static: no such directory 'missing-dir'"),
    (["--static", "s=public"], "--static: the URL prefix must start with '/'"),
    (["--static", "/a%2f=public"], "--static: the URL prefix may not contain"),
    (["--static", "/s=public", "--static", "/s/=public"], "--static: the URL prefix '/s' is mounted twice"),
    (["--static-mime", "css"], "--static-mime: expected EXT=TYPE"),
    (["--static-max-age", "-2"], "--static-max-age: expected an integer >= -1"),
    (["--static-index", "a/b.html"], "--static-index: expected '' or a file name without '/'"),
])
def test_bad_static_settings_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "public").mkdir()
    result = fulmen(*args, "--check-config", "basic:application", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_config_file_mounts(tmp_path: Path, site: Path, serve: Callable[..., Server]) -> None:
    conf = tmp_path / "conf.py"
    conf.write_text(f"static = {{'/assets': {str(site)!r}}}\nstatic_max_age = 5\n")
    server = serve("--config", str(conf), "basic:application")
    status, h, body = get(server, "/assets/hello.txt")
    assert (status, body, h["cache-control"]) == (200, HELLO, "public, max-age=5")


def test_environment_mounts(site: Path, serve: Callable[..., Server]) -> None:
    server = serve("basic:application", env={"FULMEN_STATIC": f"/a={site},/b={site / 'sub'}"})
    assert get(server, "/a/hello.txt")[2] == HELLO
    assert get(server, "/b/page.html")[2] == b"<p>page</p>\n"


def test_longest_prefix_wins(site: Path, serve: Callable[..., Server]) -> None:
    server = serve("--static", f"/s={site}", "--static", f"/s/sub={site / 'sub' / 'deeper'}", "basic:application")
    assert get(server, "/s/sub/note.txt")[2] == b"deeper\n"  # deeper/note.txt, through the /s/sub mount
    assert get(server, "/s/sub/page.html")[0] == 404  # not in deeper/
    assert get(server, "/s/sub/up")[0] == 404  # ../page.html is outside that mount's folder
    assert get(server, "/s/hello.txt")[2] == HELLO


def test_script_mode_paths_name_folders(tmp_path: Path, site: Path, serve: Callable[..., Server]) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "a.txt").write_bytes(b"asset\n")
    script = tmp_path / "site.py"
    script.write_text(
        "from fulmen.base import Static\n"
        "def hello(env, resp):\n    return 'hello ' + env['PATH_INFO']\n"
        f"PATHS = [('/static', Static({str(site)!r})), ('/assets/', 'assets'), ('/', hello)]\n"
    )
    server = serve(str(script), cwd=tmp_path.parent)  # 'assets' is relative to the script's folder
    assert get(server, "/static/hello.txt")[:3:2] == (200, HELLO)
    assert get(server, "/assets/a.txt")[:3:2] == (200, b"asset\n")
    assert get(server, "/static/missing")[2] == b"404 Not Found\n"
    assert get(server, "/other")[2] == b"hello /other"
    status, h, _ = get(server, "/static/big.bin", {"Range": "bytes=0-0"})
    assert status == 206


def test_script_of_folders_only(tmp_path: Path, site: Path, serve: Callable[..., Server]) -> None:
    script = tmp_path / "files.py"
    script.write_text(f"from fulmen.base import Static\nPATHS = [('/', Static({str(site)!r}))]\n")
    server = serve(str(script))
    assert get(server, "/hello.txt")[:3:2] == (200, HELLO)
    assert get(server, "/missing")[0] == 404


def test_script_folder_that_does_not_exist(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("from fulmen.base import Static\nPATHS = [('/s', Static('nope'))]\n")
    result = fulmen("--check-config", str(script), cwd=tmp_path)
    assert result.returncode == 2
    assert "PATHS[0]: the folder for '/s' does not exist" in result.stderr
