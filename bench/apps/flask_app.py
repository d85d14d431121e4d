"""The Flask scenario: one route, the same 13-byte body as wsgi_app's hello."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, World!"


application = app
