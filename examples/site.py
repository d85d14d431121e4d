"""A script-mode site: several handlers, each mounted at a prefix.

Run it from the repository root (the port defaults to 8000):

    fulmen examples/site.py
    fulmen --bind 127.0.0.1:8080 --workers 2 examples/site.py

fulmen executes this file and serves its PATHS, a list of (prefix, handler)
pairs. The longest prefix matching the request path wins, on whole path
segments ("/api" matches "/api" and "/api/x", not "/apix"); the handler sees
the prefix in SCRIPT_NAME and the rest of the path in PATH_INFO.

A handler is called like a WSGI application, handler(env, resp). It may call
resp(status, headers) -- or not, for "200 OK" and text/html -- and return a
str, bytes, a list or generator of them, an open file or None.
"""

import html
import json
import os
from urllib.parse import parse_qsl

from fapws4.base import Environ, Start_response

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "static", "sample.txt")


def index(env: Environ, resp: Start_response):
    """/ : the index page. "/" is also the catch-all, so other paths get a 404."""
    if env["PATH_INFO"] not in ("", "/"):
        resp("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return f"nothing at {env['PATH_INFO'].encode('latin-1').decode('utf-8', 'replace')}\n"
    root = html.escape(env["SCRIPT_NAME"], quote=True)  # root_path, "" by default
    items = "".join(
        f'<li><a href="{root}{href}">{href}</a> {html.escape(what)}</li>\n'
        for href, what in [
            ("/hello/world", "greets by the rest of the path"),
            ("/download", "an open file, sent with sendfile"),
            ("/form", "a form; POST echoes what it parsed"),
            ("/api/", "a JSON API (a mounted Flask app when Flask is installed)"),
            ("/stream", "a generator, sent chunked"),
        ]
    )
    # No resp() call: the answer is "200 OK" with Content-Type text/html.
    return (
        "<!doctype html>\n<title>fulmen script mode</title>\n"
        f"<h1>fulmen script mode</h1>\n<ul>\n{items}</ul>\n"
    )


def hello(env, resp):
    """/hello/NAME : PATH_INFO is "/NAME" (percent-decoded, bytes as latin-1)."""
    name = env["PATH_INFO"].lstrip("/").encode("latin-1").decode("utf-8", "replace") or "stranger"
    return f"<p>Hello, {html.escape(name)}!</p>\n"  # a str is sent as UTF-8


def download(env, resp):
    """/download : an open file is sent with sendfile(2), then closed by the server."""
    resp("200 OK", [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Disposition", 'attachment; filename="sample.txt"'),
    ])
    return open(SAMPLE, "rb")


FORM = """<!doctype html>
<title>form</title>
<form method="post" action="{action}">
  <label>name <input name="name"></label>
  <label>colour <input name="colour"></label>
  <button>send</button>
</form>
"""


def form(env, resp):
    """/form : GET shows a form; POST parses application/x-www-form-urlencoded."""
    if env["REQUEST_METHOD"] != "POST":
        return FORM.format(action=html.escape(env["SCRIPT_NAME"] or "/", quote=True))
    if not env.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        resp("415 Unsupported Media Type", [("Content-Type", "text/plain; charset=utf-8")])
        return "expected application/x-www-form-urlencoded\n"
    try:
        length = int(env.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = env["wsgi.input"].read(length).decode("utf-8", "replace")
    fields = parse_qsl(body, keep_blank_values=True)
    rows = "".join(f"<li>{html.escape(k)} = {html.escape(v)}</li>\n" for k, v in fields)
    return f"<!doctype html>\n<title>received</title>\n<p>You sent:</p>\n<ul>\n{rows}</ul>\n"


def stream(env, resp):
    """/stream : a generator; each item leaves as it is produced (chunked)."""
    resp("200 OK", [("Content-Type", "text/plain; charset=utf-8")])

    def lines():
        for i in range(1, 6):
            yield f"line {i}\n"

    return lines()


# /api : any WSGI application can be mounted at a prefix. Flask reads
# SCRIPT_NAME, so its routes and url_for() work under "/api".
try:
    from flask import Flask, jsonify, url_for
except ImportError:  # no Flask: the same API as a bare WSGI application
    Flask = None

if Flask is not None:
    api = Flask(__name__)

    @api.route("/")
    def api_index():
        return jsonify(api="flask", hello=url_for("api_hello", name="world"))

    @api.route("/hello/<name>")
    def api_hello(name):
        return jsonify(hello=name)

else:

    def api(env, resp):
        path = env["PATH_INFO"]
        if path in ("", "/"):
            data = {"api": "wsgi", "hello": env["SCRIPT_NAME"] + "/hello/world"}
        elif path.startswith("/hello/") and path.count("/") == 2:
            data = {"hello": path[len("/hello/"):].encode("latin-1").decode("utf-8", "replace")}
        else:
            resp("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "not found"}']
        resp("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(data).encode()]


PATHS = [
    ("/", index),
    ("/hello/", hello),
    ("/download", download),
    ("/form", form),
    ("/api", api),
    ("/stream", stream),
]
