"""A small, ordinary Falcon (WSGI) application, served unchanged by fulmen in tests/test_frameworks.py."""

import hashlib
import os

import falcon

STATIC_FILE = os.environ.get("FRAMEWORK_TEST_FILE", "")


class Index:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "falcon index"

    def on_head(self, req, resp):
        self.on_get(req, resp)


class Hello:
    def on_get(self, req, resp, name):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"Hello, {name}!"


class Item:
    def on_get(self, req, resp, item_id):
        if item_id > 100:
            raise falcon.HTTPNotFound()
        resp.media = {"id": item_id, "double": item_id * 2}


class Query:
    def on_get(self, req, resp):
        out = {}
        for key in req.params:
            value = req.get_param_as_list(key)
            out[key] = value
        resp.media = out


class Form:
    def on_post(self, req, resp):
        form = req.get_media()  # URL-encoded forms are parsed by Falcon's default media handlers.
        resp.media = {"content_type": req.content_type.split(";")[0], "fields": form}


class Upload:
    def on_post(self, req, resp):
        out = {"fields": {}}
        for part in req.get_media():
            data = part.stream.read()
            if part.filename:
                out.update(filename=part.filename, size=len(data), sha256=hashlib.sha256(data).hexdigest())
            else:
                out["fields"][part.name] = data.decode()
        resp.media = out


class JsonEcho:
    def on_post(self, req, resp):
        resp.media = {"received": req.get_media(), "method": req.method}
        resp.status = falcon.HTTP_201


class Boom:
    def on_get(self, req, resp):
        resp.text = str(1 / 0)  # ZeroDivisionError -> Falcon logs it to wsgi.errors and answers 500


class Stream:
    def on_get(self, req, resp):
        n = req.get_param_as_int("n", default=5)
        prefix = req.get_param("prefix", default="line")
        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = (f"{prefix} {i}\n".encode() for i in range(n))

    def on_head(self, req, resp):
        self.on_get(req, resp)


class File:
    def on_get(self, req, resp):
        # A stream with read() goes through wsgi.file_wrapper when the server offers one.
        resp.content_type = "application/octet-stream"
        # Falcon closes the stream once the response is sent (through the wrapper's close()).
        resp.set_stream(open(STATIC_FILE, "rb"), os.path.getsize(STATIC_FILE))  # noqa: SIM115


class WhoAmI:
    def on_get(self, req, resp):
        resp.media = {"remote_port": req.env.get("REMOTE_PORT"), "n": req.get_param("n")}


class Headers:
    def on_get(self, req, resp):
        resp.media = {"host": req.netloc, "user_agent": req.user_agent or ""}
        resp.set_header("X-Custom", "falcon")
        resp.set_cookie("session_id", "abc123", secure=False)


app = application = falcon.App()
app.add_route("/", Index())
app.add_route("/hello/{name}", Hello())
app.add_route("/items/{item_id:int}", Item())
app.add_route("/query", Query())
app.add_route("/form", Form())
app.add_route("/upload", Upload())
app.add_route("/json", JsonEcho())
app.add_route("/boom", Boom())
app.add_route("/stream", Stream())
app.add_route("/file", File())
app.add_route("/whoami", WhoAmI())
app.add_route("/headers", Headers())
