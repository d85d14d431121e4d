"""PEP 3333 behaviour, end to end through real sockets."""

import http.client
import importlib.metadata
import json
import threading

import fulmen

import pytest
import requests

from conftest import read_response, recv_until_closed, request


@pytest.fixture
def srv(serve):
    return serve("basic:app")


def get_environ(srv, raw: bytes) -> dict:
    status, _, body, _ = request(srv, raw)
    assert status == 200
    return json.loads(body)


def test_environ_has_every_required_key(srv):
    env = get_environ(srv, b"GET /environ?a=1&b=%20x HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\n\r\n")
    for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT",
                "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "wsgi.multithread",
                "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated"):
        assert key in env, key
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=1&b=%20x"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(srv.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1" and int(env["REMOTE_PORT"]) > 0
    assert env["HTTP_HOST"] == "example.com:8080" and env["HTTP_USER_AGENT"] == "t"
    assert env["wsgi.version"] == [1, 0] and env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is False and env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.errors.has_write"] and env["wsgi.file_wrapper.present"]
    assert "CONTENT_TYPE" not in env and "CONTENT_LENGTH" not in env
    # The version has one source (fulmen/__init__.py): the C++ core reports the same one.
    assert env["SERVER_SOFTWARE"] == f"fulmen/{fulmen.__version__}"
    assert importlib.metadata.version("fulmen") == fulmen.__version__


def test_path_is_percent_decoded_and_latin1(srv):
    env = get_environ(srv, b"GET /environ%2Fx%20y%C3%A9 HTTP/1.1\r\nHost: a\r\n\r\n")
    # PEP 3333: native strings carry the raw bytes decoded as latin-1.
    assert env["PATH_INFO"] == "/environ/x y\u00c3\u00a9"
    assert env["RAW_URI"] == "/environ%2Fx%20y%C3%A9"


def test_content_headers_have_no_http_twins(srv):
    status, _, body, _ = request(
        srv, b"POST /environ HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n")
    env = json.loads(body)
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "0"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_header_names_with_underscore_are_dropped(srv):
    env = get_environ(srv, b"GET /environ HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\n"
                           b"X_Forwarded_For: 6.6.6.6\r\nX-Custom-Thing: v\r\n\r\n")
    assert env["HTTP_X_FORWARDED_FOR"] == "1.1.1.1"
    assert env["HTTP_X_CUSTOM_THING"] == "v"


def test_repeated_headers_are_joined(srv):
    # Accept-Language and the second Cookie repeat the same text: still two fields, joined.
    env = get_environ(srv, b"GET /environ HTTP/1.1\r\nHost: a\r\nAccept: a\r\nAccept: b\r\n"
                           b"Cookie: x=1\r\nCookie: y=2\r\nCookie: y=2\r\nX-Multi: 1\r\nX-Multi: 2\r\n"
                           b"Accept-Language: en\r\nAccept-Language: en\r\n\r\n")
    assert env["HTTP_ACCEPT"] == "a, b"
    assert env["HTTP_COOKIE"] == "x=1; y=2; y=2"
    assert env["HTTP_X_MULTI"] == "1, 2"
    assert env["HTTP_ACCEPT_LANGUAGE"] == "en, en"


def environ_raw(i: int, host: str) -> bytes:
    path = f"/environ/{i % 2}"
    query = "" if i % 3 else f"?q={i}"
    return (f"GET {path}{query} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ua{i % 2}\r\n"
            f"X-Seq: {i}\r\n\r\n").encode()


def check_own_values(env: dict, i: int, host: str, sock) -> None:
    assert env["HTTP_HOST"] == host
    assert env["PATH_INFO"] == f"/environ/{i % 2}"
    assert env["QUERY_STRING"] == ("" if i % 3 else f"q={i}")
    assert env["HTTP_USER_AGENT"] == f"ua{i % 2}" and env["HTTP_X_SEQ"] == str(i)
    assert env["REMOTE_PORT"] == str(sock.getsockname()[1])


def test_values_follow_each_request_across_connections(srv):
    # environ strings may be reused from the previous request when the bytes
    # are the same; every request must still see its own values, pipelined on
    # one connection and interleaved with another connection's.
    with srv.connect() as a, srv.connect() as b:
        a.sendall(b"".join(environ_raw(i, "one") for i in range(6)))
        for i in range(6):
            b.sendall(environ_raw(i, "two"))
            status, _, body, _ = read_response(b)
            assert status == 200
            check_own_values(json.loads(body), i, "two", b)
            status, _, body, _ = read_response(a)
            assert status == 200
            check_own_values(json.loads(body), i, "one", a)


def test_values_follow_each_request_across_threads(serve):
    # With --threads the environ is built on pool threads that share the
    # remembered strings: eight clients at once, each with its own Host, beside
    # a long app call that holds one thread, each see only their own values.
    srv = serve("--threads", "4", "basic:app")
    errors: list[BaseException] = []
    with srv.connect(timeout=10) as long_call:
        long_call.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: long\r\n\r\n")

        def client(n: int) -> None:
            try:
                with srv.connect(timeout=10) as s:
                    for i in range(30):
                        s.sendall(environ_raw(i, f"client{n}"))
                        status, _, body, _ = read_response(s)
                        assert status == 200
                        check_own_values(json.loads(body), i, f"client{n}", s)
            except BaseException as e:  # noqa: BLE001 (reported by the main thread)
                errors.append(e)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors[0]
        assert all(not t.is_alive() for t in threads)
        status, _, _, _ = read_response(long_call)
        assert status == 200


def test_http10_protocol_as_received(srv):
    env = json.loads(recv_until_closed_body(srv, b"GET /environ HTTP/1.0\r\n\r\n"))
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


def recv_until_closed_body(srv, raw):
    with srv.connect() as s:
        s.sendall(raw)
        return recv_until_closed(s).partition(b"\r\n\r\n")[2]


def test_root_path_sets_script_name(serve):
    srv = serve("--root-path", "/app", "basic:app")
    env = get_environ(srv, b"GET /app/environ HTTP/1.1\r\nHost: a\r\n\r\n")
    assert env["SCRIPT_NAME"] == "/app" and env["PATH_INFO"] == "/environ"


def test_app_exception_before_headers_gives_500_and_traceback(srv):
    status, _, body, _ = request(srv, b"GET /raise HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status == 500
    srv.wait_for("ValueError: boom before start_response")
    srv.wait_for(r"Traceback \(most recent call last\)")
    # The worker keeps serving.
    assert request(srv, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")[0] == 200


def test_app_exception_after_start_response_gives_500(srv):
    assert request(srv, b"GET /raise-after-start HTTP/1.1\r\nHost: a\r\n\r\n")[0] == 500


def test_exception_while_streaming_cuts_the_connection(srv):
    with srv.connect() as s:
        s.sendall(b"GET /tracked-fail HTTP/1.1\r\nHost: a\r\n\r\n")
        data = recv_until_closed(s)
        # Headers and the first chunk left; the response ends without its last-chunk.
        assert data.startswith(b"HTTP/1.1 200 OK") and b"aaaaaaaaaa" in data and not data.endswith(b"0\r\n\r\n")
    srv.wait_for("RuntimeError: boom while iterating")


def test_exc_info_replaces_status_before_headers_sent(srv):
    status, _, body, _ = request(srv, b"GET /exc-info HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status == 503 and body == b"recovered"


@pytest.mark.parametrize("path", ["/twice", "/bad-header", "/str-body", "/no-start"])
def test_app_protocol_errors_give_500(srv, path):
    status, headers, body, _ = request(srv, f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert status == 500
    assert "set-cookie" not in headers


def test_invalid_status_is_refused(srv):
    assert request(srv, b"GET /status?abc HTTP/1.1\r\nHost: a\r\n\r\n")[0] == 500


def test_write_callable(srv):
    status, _, body, _ = request(srv, b"GET /write HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status == 200 and body == b"written-then-returned"


def test_wsgi_errors_goes_to_the_log(srv):
    assert request(srv, b"GET /errors HTTP/1.1\r\nHost: a\r\n\r\n")[2] == b"logged"
    srv.wait_for("message to wsgi.errors")


def test_app_server_header_wins(srv):
    _, headers, _, _ = request(srv, b"GET /server-header HTTP/1.1\r\nHost: a\r\n\r\n")
    assert headers["server"] == "custom" and "date" in headers


@pytest.mark.parametrize("offset", [0, 1000])
def test_file_wrapper_is_sent_whole(srv, offset):
    status, headers, body, _ = request(srv, f"GET /file?{offset or ''} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    expected = (bytes(range(256)) * 4096)[offset:]
    assert status == 200 and headers["content-length"] == str(len(expected)) and body == expected


def test_close_is_called_on_every_iterable(srv):
    def closes():
        return int(request(srv, b"GET /closes HTTP/1.1\r\nHost: a\r\n\r\n")[2])

    before = closes()
    request(srv, b"GET /tracked HTTP/1.1\r\nHost: a\r\n\r\n")
    with srv.connect() as s:
        s.sendall(b"GET /tracked-fail HTTP/1.1\r\nHost: a\r\n\r\n")
        recv_until_closed(s)
    # A client that goes away in the middle of a large response.
    s = srv.connect()
    s.sendall(b"GET /tracked-big HTTP/1.1\r\nHost: a\r\n\r\n")
    s.recv(1000)
    s.close()
    for _ in range(50):
        if closes() == before + 3:
            break
    assert closes() == before + 3


def test_http_client_and_requests(srv):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    for _ in range(3):
        conn.request("GET", "/")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"hello world!\n"
    conn.request("POST", "/echo", body=b"data" * 1000, headers={"Content-Type": "application/octet-stream"})
    assert conn.getresponse().read() == b"data" * 1000
    conn.close()
    with requests.Session() as s:
        r = s.post(srv.url("/echo"), data=iter([b"gen", b"erated"]))  # chunked upload
        assert r.status_code == 200 and r.content == b"generated"
        r = s.get(srv.url("/nope"))
        assert r.status_code == 404


def test_validator_wrapped_app(serve):
    srv = serve("validated:app")
    with requests.Session() as s:
        assert s.get(srv.url("/")).text == "hello"
        assert s.head(srv.url("/")).content == b""
        assert s.post(srv.url("/echo"), data=b"x" * 5000).content == b"x" * 5000
        assert s.post(srv.url("/echo"), data=iter([b"a", b"b"])).content == b"ab"
        assert s.get(srv.url("/stream")).content == b"onetwothree"
        assert s.get(srv.url("/write")).content == b"w1w2rest"
        assert s.get(srv.url("/lines"), data=b"").status_code == 200
        assert s.post(srv.url("/lines"), data=b"a\nb\nc").content == b"3"
    srv.stop()
    assert "AssertionError" not in srv.log and "Traceback" not in srv.log, srv.log
