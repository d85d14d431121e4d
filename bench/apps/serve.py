"""Start a WSGI server that has no command line of its own.

    python serve.py SERVER HOST PORT MODULE:CALLABLE

SERVER is bjoern, fastpysgi, fastwsgi or werkzeug (Flask's development
server, threaded as `flask run` runs it, with its per-request log line off
as every other server's access log is).
"""

import importlib
import logging
import os
import sys


def load(target):
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute or "application")


def main():
    server, host, port, target = sys.argv[1:5]
    port = int(port)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    app = load(target)
    if server == "bjoern":
        import bjoern

        bjoern.run(app, host, port)
    elif server == "fastpysgi":
        import fastpysgi

        fastpysgi.run(wsgi_app=app, host=host, port=port)
    elif server == "fastwsgi":
        import fastwsgi

        fastwsgi.run(wsgi_app=app, host=host, port=port)
    elif server == "werkzeug":
        from werkzeug.serving import run_simple

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        run_simple(host, port, app, threaded=True)
    else:
        sys.exit(f"serve.py: unknown server {server!r}")


if __name__ == "__main__":
    main()
