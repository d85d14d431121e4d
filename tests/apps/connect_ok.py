"""An app that says 200 to everything, CONNECT included, with a body and its own Content-Length."""


def app(environ, start_response):
    body = f"{environ['REQUEST_METHOD']} {environ.get('HTTP_HOST', '')}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
