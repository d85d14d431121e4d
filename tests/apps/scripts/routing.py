"""Script mode routing: every handler answers with its name, SCRIPT_NAME and PATH_INFO."""

import json


def make(name):
    def handler(env, resp):
        resp("200 OK", [("Content-Type", "application/json")])
        return json.dumps({
            "handler": name,
            "script_name": env["SCRIPT_NAME"],
            "path_info": env["PATH_INFO"],
            "query": env["QUERY_STRING"],
        })

    return handler


# Deliberately not sorted by length: the longest match wins whatever the order.
PATHS = [
    ("/", make("root")),
    ("/api", make("api")),
    ("/api/v2/", make("v2")),  # the trailing "/" is ignored
    ("/a", make("a")),
    ("/static/img", make("img")),
    ("/café", make("cafe")),  # matched against the percent-decoded UTF-8 bytes
]
