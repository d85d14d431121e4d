"""A minimal standard WSGI application (PEP 3333).

Run it from the repository root with either of:

    fulmen examples/hello_wsgi.py            (a WSGI script: it defines application, no PATHS)
    fulmen --chdir examples hello_wsgi:application
    cd examples && fulmen hello_wsgi:application
"""


def application(environ, start_response):
    body = b"hello world!\n"
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
