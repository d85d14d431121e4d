"""Reports what the app saw of the request as JSON: the corpus tests compare it with the expectation."""

import base64
import json


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    headers = sorted(
        [k, v] for k, v in environ.items() if k.startswith("HTTP_") or k in ("CONTENT_TYPE", "CONTENT_LENGTH")
    )
    out = {
        "method": environ["REQUEST_METHOD"],
        "uri": environ["RAW_URI"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "protocol": environ["SERVER_PROTOCOL"],
        "headers": headers,
        "body_b64": base64.b64encode(body).decode(),
    }
    data = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
