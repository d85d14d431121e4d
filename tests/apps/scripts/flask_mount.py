"""A Flask application mounted at /flask in a script, next to a plain handler at /."""

from flask import Flask, jsonify, redirect, request, url_for

app = Flask(__name__)


@app.route("/")
def index():
    return jsonify(
        script_root=request.script_root,
        path=request.path,
        index=url_for("index"),
        user=url_for("user", name="ann"),
        external=url_for("user", name="ann", _external=True),
    )


@app.route("/user/<name>")
def user(name):
    return jsonify(name=name, url=url_for("user", name=name), path=request.path)


@app.route("/go")
def go():
    return redirect(url_for("user", name="bob"))


@app.route("/echo", methods=["POST"])
def echo():
    return jsonify(form=request.form.to_dict())


def root(env, resp):
    return "root: " + env["SCRIPT_NAME"] + "|" + env["PATH_INFO"]


PATHS = [("/", root), ("/flask", app)]
