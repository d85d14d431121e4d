"""An app that reports the worker process it runs in, for tests/test_ops.py and test_gunicorn_compat.py.

GET /?env=NAME      -> the value of os.environ[NAME] ("<unset>" when absent)
GET /?import=MODULE -> MODULE.VALUE of a module found on sys.path
GET /who            -> JSON: pid, ppid, uid, gid, supplementary groups
"""

import importlib
import json
import os


def application(environ, start_response):
    query = environ.get("QUERY_STRING", "")
    key, _, value = query.partition("=")
    if key == "env":
        body = os.environ.get(value, "<unset>")
    elif key == "import":
        body = str(importlib.import_module(value).VALUE)
    else:
        body = json.dumps(
            {"pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "gid": os.getgid(),
             "groups": os.getgroups()}
        )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
