import hashlib
import json
import os
import time

from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.middleware.csrf import get_token
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

STATIC_FILE = os.environ.get("FRAMEWORK_TEST_FILE", "")


def index(request):
    return HttpResponse("django index", content_type="text/plain")


def hello(request, name):
    return HttpResponse(f"Hello, {name}!", content_type="text/plain")


def item(request, item_id):
    if item_id > 100:
        raise Http404("no such item")
    return JsonResponse({"id": item_id, "double": item_id * 2})


def query(request):
    return JsonResponse({k: request.GET.getlist(k) for k in request.GET})


def csrf(request):
    return JsonResponse({"token": get_token(request)})


@require_POST
def form(request):
    # Protected by CsrfViewMiddleware: the test sends the cookie and the token field.
    return JsonResponse(
        {"content_type": request.content_type, "fields": {k: request.POST.getlist(k) for k in request.POST}}
    )


@csrf_exempt
@require_POST
def upload(request):
    f = request.FILES["file"]
    data = f.read()
    return JsonResponse(
        {
            "filename": f.name,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "fields": {k: request.POST.getlist(k) for k in request.POST},
        }
    )


@csrf_exempt
@require_POST
def json_echo(request):
    payload = json.loads(request.body)
    return JsonResponse({"received": payload, "method": request.method}, status=201)


def boom(request):
    return HttpResponse(str(1 / 0))  # ZeroDivisionError -> Django's own 500 page, logged to stderr


def stream(request):
    n = int(request.GET.get("n", 5))
    prefix = request.GET.get("prefix", "line")
    return StreamingHttpResponse((f"{prefix} {i}\n" for i in range(n)), content_type="text/plain")


def file(request):
    # FileResponse goes through wsgi.file_wrapper when the server offers one.
    return FileResponse(open(STATIC_FILE, "rb"), content_type="application/octet-stream")


def whoami(request):
    return JsonResponse({"remote_port": request.META.get("REMOTE_PORT"), "n": request.GET.get("n")})


def headers(request):
    resp = JsonResponse({"host": request.get_host(), "user_agent": request.META.get("HTTP_USER_AGENT", "")})
    resp["X-Custom"] = "django"
    resp.set_cookie("session_id", "abc123")
    return resp


def wait_echo(request):
    # The request object keeps its own query through a wait while other requests run.
    rid = request.GET["id"]
    time.sleep(float(request.GET.get("s", "0.01")))
    return JsonResponse({"id": rid, "args_id": request.GET["id"]})
