"""A small, ordinary Flask application, served unchanged by fulmen in tests/test_frameworks.py.

Nothing here knows about fulmen: it is the kind of app a user would write.
"""

import hashlib
import os

from flask import (
    Flask,
    Response,
    abort,
    jsonify,
    request,
    send_file,
    stream_with_context,
)

app = Flask(__name__)

# The file /file sends: its path comes from the test (FRAMEWORK_TEST_FILE); the bytes are
# compared there.
STATIC_FILE = os.environ.get("FRAMEWORK_TEST_FILE", "")


@app.route("/")
def index():
    return "flask index"


@app.route("/hello/<name>")
def hello(name):
    return f"Hello, {name}!"


@app.route("/items/<int:item_id>")
def item(item_id):
    if item_id > 100:
        abort(404)
    return jsonify(id=item_id, double=item_id * 2)


@app.route("/query")
def query():
    return jsonify({k: request.args.getlist(k) for k in request.args})


@app.route("/form", methods=["POST"])
def form():
    return jsonify(
        content_type=request.mimetype,
        fields={k: request.form.getlist(k) for k in request.form},
    )


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(
        filename=f.filename,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        fields={k: request.form.getlist(k) for k in request.form},
    )


@app.route("/json", methods=["POST"])
def json_echo():
    payload = request.get_json()
    return jsonify(received=payload, method=request.method), 201


@app.route("/boom")
def boom():
    return 1 / 0  # ZeroDivisionError -> Flask logs it and answers 500


@app.route("/log-error")
def log_error():
    # Flask's default handler writes this line, already formatted, to wsgi.errors.
    app.logger.error("flask logger says %s", "hi")
    return "logged"


@app.route("/stream")
def stream():
    n = request.args.get("n", 5, type=int)

    @stream_with_context
    def generate():
        # request is usable inside the generator thanks to stream_with_context.
        prefix = request.args.get("prefix", "line")
        for i in range(n):
            yield f"{prefix} {i}\n"

    return Response(generate(), mimetype="text/plain")


@app.route("/file")
def file():
    return send_file(STATIC_FILE, mimetype="application/octet-stream")


@app.route("/headers")
def headers():
    resp = jsonify(host=request.host, user_agent=request.headers.get("User-Agent", ""))
    resp.headers["X-Custom"] = "flask"
    resp.set_cookie("session_id", "abc123")
    return resp


@app.route("/whoami")
def whoami():
    return jsonify(remote_port=request.environ.get("REMOTE_PORT"), n=request.args.get("n"))
