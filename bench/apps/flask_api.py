"""The flask-json-post scenario: a JSON API, POST /api.

The body (a 10 KiB JSON object, bench/.data/api.json, sent by wrk/post_json.lua)
holds a list of items; the app parses it with request.get_json() and answers
how many there are and the sum of their quantities.
"""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/api")
def api():
    items = request.get_json()["items"]
    return jsonify(count=len(items), total=sum(item["qty"] for item in items))


application = app
