"""An app wrapped in wsgiref.validate.validator: any PEP 3333 violation by the server raises."""

from wsgiref.validate import validator


def _app(environ, start_response):
    path = environ["PATH_INFO"]
    inp = environ["wsgi.input"]
    if path == "/echo":
        # The validator insists on read(size); read in pieces to the end (chunked bodies
        # have no CONTENT_LENGTH).
        parts = []
        while True:
            part = inp.read(4096)
            if not part:
                break
            parts.append(part)
        data = b"".join(parts)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"one", b"two", b"three"])
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"w1")
        write(b"w2")
        return [b"rest"]
    if path == "/lines":
        n = 0
        while True:
            line = inp.readline()
            if not line:
                break
            n += 1
        inp.readlines()
        list(inp)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(n).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


app = validator(_app)
