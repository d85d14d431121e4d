"""Script mode: one handler per kind of return value (tests/test_script_mode.py).

SCRIPT_TEST_FILE names the file the file handlers send (this script by default).
"""

import io
import json
import os

from fapws4.base import Environ, Start_response

DATA_FILE = os.environ.get("SCRIPT_TEST_FILE", __file__)
UNICODE = "héllo wörld ✓ 日本語 🚀"


def r_str(env, resp):
    return "plain str"


def r_unicode(env, resp):
    return UNICODE


def r_empty_str(env, resp):
    return ""


def r_bytes(env, resp):
    return b"raw \xff\x00 bytes"


def r_list_str(env, resp):
    return ["a", "b", "c", UNICODE]


def r_list_mixed(env, resp):
    return ["str ", b"bytes ", "", b"end"]


def r_tuple_bytes(env, resp):
    return (b"tu", b"ple")


def r_empty_list(env, resp):
    return []


def r_gen(env, resp):
    def body():
        yield "one "
        yield b"two "
        yield ""
        yield b""
        yield "thrée"

    return body()


def r_gen_single(env, resp):
    return (s for s in ["only"])


def r_gen_empty(env, resp):
    return (s for s in [])


def r_file(env, resp):
    return open(DATA_FILE, "rb")


def r_file_seek(env, resp):
    f = open(DATA_FILE, "rb")
    f.seek(int(env["QUERY_STRING"] or 1000))
    return f


def r_file_read(env, resp):
    f = open(DATA_FILE, "rb")  # buffered: the descriptor is further on than f.tell()
    f.read(int(env["QUERY_STRING"] or 10))
    return f


def r_surrogate(env, resp):
    return "lone \udc80 surrogate"  # cannot be encoded to UTF-8


def r_file_resp(env, resp):
    resp("200 OK", [("Content-Type", "application/octet-stream"), ("X-File", "yes")])
    return open(DATA_FILE, "rb")


def r_bytesio(env, resp):
    return io.BytesIO(b"in memory, no descriptor")


def r_none(env, resp):
    return None


def r_resp_none(env, resp):
    resp("204 No Content", [("X-Handler", "none")])
    return None


def r_custom(env, resp):
    resp("201 Created", [("Content-Type", "application/json"), ("X-Handler", "custom")])
    return '{"ok": true}'


def r_custom_404(env, resp):
    resp("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
    return "custom missing"


def r_wsgi(env, resp):
    body = b"a plain WSGI app"
    resp("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def r_write(env, resp):
    write = resp("200 OK", [("Content-Type", "text/plain")])
    write(b"legacy write, ")
    return ["then ", b"the body"]


def r_env(env, resp):
    resp("200 OK", [("Content-Type", "application/json")])
    keys = ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD")
    return json.dumps({k: env.get(k) for k in keys})


def r_post(env, resp):
    n = int(env.get("CONTENT_LENGTH") or 0)
    return env["wsgi.input"].read(n)


def r_boom(env, resp):
    return 1 / 0


def r_gen_boom(env, resp):
    def body():
        raise KeyError("raised inside the generator")
        yield "never"

    return body()


def r_type_error(env, resp):
    return 42  # not a body


PATHS = [(f"/{name[2:]}", handler) for name, handler in list(globals().items()) if name.startswith("r_")]
