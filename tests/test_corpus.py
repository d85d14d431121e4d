"""Request corpora replayed against the running server: whole, byte by byte, and in random splits.

Two corpora:
- tests/requests/ (ours): ``valid/NAME.http`` with ``NAME.json`` (what the app must see) and
  ``invalid/NAME.http`` with ``NAME.status`` (the status the server must answer, then close).
- ../shared/corpus/gunicorn-requests.jsonl when present (MIT, from gunicorn's test suite).
  Where our policy differs from gunicorn's expectation the case is listed in DEVIATIONS
  with the RFC section that decides it.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import urllib.parse
from pathlib import Path

import pytest

from conftest import recv_until_closed

HERE = Path(__file__).resolve().parent
OWN = HERE / "requests"
SHARED = HERE.parent.parent / "shared" / "corpus" / "gunicorn-requests.jsonl"

# gunicorn case -> (our status, why). Everything not listed must match gunicorn's expectation.
DEVIATIONS: dict[str, tuple[int, str]] = {
    "gunicorn/valid/009": (400, "RFC 9112 6.1: Content-Length with Transfer-Encoding is rejected (smuggling)"),
    "gunicorn/valid/025": (501, "RFC 9112 6.1: only chunked is supported as transfer coding; gzip -> 501"),
    "gunicorn/valid/025_line": (501, "RFC 9112 6.1: only chunked is supported as transfer coding; gzip -> 501"),
    "gunicorn/valid/rfc9112_smuggle_gzip_chunked_01": (501, "RFC 9112 6.1: gzip transfer coding unsupported"),
    "gunicorn/valid/029": (501, "RFC 9112 7: 'identity' is no longer a transfer coding -> 501"),
    "gunicorn/valid/030": (501, "RFC 9112 7: 'identity' is no longer a transfer coding -> 501"),
    "gunicorn/valid/rfc9112_smuggle_te_identity_chunked_01": (501, "RFC 9112 7: 'identity' -> 501"),
    "gunicorn/valid/027": (400, "RFC 9112 3.2 / RFC 3986: raw non-ASCII bytes are not allowed in the target"),
    "gunicorn/valid/099": (400, "RFC 9112 8: the body ends before its Content-Length (incomplete message)"),
    "gunicorn/valid/rfc9112_target_absolute_userinfo_01": (400, "RFC 9110 4.2.4: userinfo in an http URI is an error"),
    "gunicorn/invalid/006": (200, "request-line limit is 8190 bytes (max_request_line), not gunicorn's 4094"),
    "gunicorn/invalid/007": (200, "no per-field size limit: the head as a whole is bounded (max_header_size)"),
    "gunicorn/invalid/008": (200, "no per-field size limit: the head as a whole is bounded (max_header_size)"),
    "gunicorn/invalid/017": (400, "no Host (RFC 9112 3.2); no per-field size limit, the head as a whole is bounded"),
    "gunicorn/invalid/rfc9110_trailer_forbidden_cl_01": (
        200, "RFC 9110 6.5.1: trailers are discarded, never merged, so framing fields in them change nothing"),
    "gunicorn/invalid/rfc9110_trailer_forbidden_host_01": (200, "RFC 9110 6.5.1: trailers are discarded"),
    "gunicorn/invalid/rfc9110_trailer_forbidden_te_01": (200, "RFC 9110 6.5.1: trailers are discarded"),
}
# Own cases whose expectation needs a change outside the parser -> what it needs. They run as
# strict xfails: once the change lands they pass, fail as XPASS, and the entry is removed.
PENDING: dict[str, str] = {}
# Fields of the app's view that legitimately differ from gunicorn's expectation.
FIELD_DEVIATIONS: dict[str, dict[str, str]] = {
    # CONNECT's authority-form target is passed through whole as PATH_INFO (RFC 9112 3.2.3).
    "gunicorn/valid/rfc9112_target_authority_connect_01": {"path": "example.com:443"},
}


def load_own() -> list[dict]:
    cases = []
    for http in sorted(OWN.glob("*/*.http")):
        raw = http.read_bytes()
        name = f"{http.parent.name}/{http.stem}"
        if http.parent.name == "valid":
            cases.append({"name": name, "raw": raw, "expect": json.loads(http.with_suffix(".json").read_text())})
        else:
            cases.append({"name": name, "raw": raw, "status": int(http.with_suffix(".status").read_text())})
    return cases


def gunicorn_status(error: str) -> int:
    if error.startswith("LimitRequestHeaders"):
        return 431
    if error == "LimitRequestLine":
        return 414
    if error == "UnsupportedTransferCoding":
        return 501
    return 400


def load_shared() -> list[dict]:
    if not SHARED.exists():
        return []
    cases = []
    for line in SHARED.read_text().splitlines():
        d = json.loads(line)
        if d["cfg"]:
            continue  # behaviour behind gunicorn options fulmen does not have
        name = "gunicorn/" + d["name"]
        raw = base64.b64decode(d["raw_b64"])
        case = {"name": name, "raw": raw}
        if d["kind"] == "valid" and name not in DEVIATIONS:
            expect = [gunicorn_to_environ(e) | FIELD_DEVIATIONS.get(name, {}) for e in d["expect"]]
            # RFC 9112 3.2: an HTTP/1.1 request without Host gets 400. gunicorn accepts those,
            # so the case is replayed twice: as is (answered up to the first such request, which
            # gets 400) and, for single requests, with a Host added to check everything else.
            missing = [i for i, e in enumerate(d["expect"])
                       if e["version"] == [1, 1] and not any(h[0] == "HOST" for h in e["headers"])]
            if missing:
                cases.append({"name": name, "raw": raw, "answered": expect[: missing[0]], "status": 400})
                if len(expect) == 1:
                    hosted = dict(expect[0])
                    hosted["headers"] = sorted(hosted["headers"] + [["HTTP_HOST", "corpus"]])
                    cases.append({"name": name + "+host", "raw": raw.replace(b"\r\n", b"\r\nHost: corpus\r\n", 1),
                                  "expect": [hosted]})
                continue
            case["expect"] = expect
        elif name in DEVIATIONS:
            case["status"] = DEVIATIONS[name][0]
            if d["kind"] == "valid" and len(d["expect"]) == 1 and d["expect"][0]["version"] == [1, 1] and not any(
                    h[0] == "HOST" for h in d["expect"][0]["headers"]):
                # Add the Host it lacks, so the deviation itself is what is tested.
                case["raw"] = raw.replace(b"\r\n", b"\r\nHost: corpus\r\n", 1)
        else:
            case["status"] = gunicorn_status(d["expect_error"])
        cases.append(case)
    return cases


def gunicorn_to_environ(e: dict) -> dict:
    headers: dict[str, str] = {}
    for name, value in e["headers"]:
        if "_" in name:
            continue  # dropped by design (no spoofing of "-" names)
        key = name.replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        sep = "; " if key == "HTTP_COOKIE" else ", "
        headers[key] = headers[key] + sep + value if key in headers else value
    return {
        "method": e["method"],
        "uri": e["uri"],
        "path": urllib.parse.unquote(e["path"], encoding="latin-1"),
        "query": e["query"],
        "protocol": "HTTP/%d.%d" % tuple(e["version"]),
        "headers": sorted([k, v] for k, v in headers.items()),
        "body_b64": e["body_b64"],
    }


CASES = load_own() + load_shared()
PARAMS = [pytest.param(c, id=c["name"], marks=[pytest.mark.xfail(strict=True, reason=PENDING[c["name"]])]
                       if c["name"] in PENDING else []) for c in CASES]


@pytest.fixture(scope="module")
def srv(serve_module):
    return serve_module("echo:app")


def end_of_close_request(raw: bytes) -> int | None:
    """Where a request that says "Connection: close" ends, when more bytes follow it (a
    client that breaks RFC 9112 9.6: it MUST NOT send more), else None."""
    pos = 0
    while (end := raw.find(b"\r\n\r\n", pos)) >= 0:
        head = raw[pos:end].lower()
        fields = [line.partition(b":") for line in head.split(b"\r\n")[1:]]
        length = next((int(v) for k, _, v in fields if k.strip() == b"content-length" and v.strip().isdigit()), 0)
        if any(k.strip() == b"transfer-encoding" for k, _, _ in fields):
            return None  # not needed by the corpus: such cases are sent as they are
        pos = end + 4 + length
        if any(k.strip() == b"connection" and b"close" in [t.strip() for t in v.split(b",")] for k, _, v in fields):
            return pos if pos < len(raw) else None
    return None


def send(srv, raw: bytes, mode: str, rng: random.Random) -> bytes:
    s = srv.connect()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # What follows a "Connection: close" request is never parsed (the connection ends with
    # that answer); it goes with the request's last byte, as it would be in flight from such a
    # client before the answer. Sent later, it would meet a closed socket and reset the
    # connection, which the server may do there: the client broke RFC 9112 9.6.
    tail_at = end_of_close_request(raw)
    body, tail = (raw, b"") if tail_at is None else (raw[: tail_at - 1], raw[tail_at - 1 :])
    try:
        if mode == "whole":
            pieces = [raw]
        elif mode == "bytes":
            pieces = [body[i : i + 1] for i in range(len(body))]
        else:
            cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, 4))) if len(body) > 1 else []
            pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
        if mode != "whole" and tail:
            pieces.append(tail)
        for p in pieces:
            s.sendall(p)
        s.shutdown(socket.SHUT_WR)  # every case is complete: EOF lets the server close after the answers
        return recv_until_closed(s)
    finally:
        s.close()


def split_responses(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data
        status = int(head.split(b" ")[1])
        # Without Content-Length the body runs to the close (RFC 9112 6.3 point 8; a 2xx to
        # CONNECT, RFC 9110 9.3.6); an error answer without one has none (our 4xx all have one).
        length = len(rest) if status < 300 else 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        out.append((status, rest[:length]))
        data = rest[length:]
    return out


@pytest.mark.skipif(not CASES, reason="no corpus")
@pytest.mark.parametrize("mode", ["whole", "bytes", "random"])
@pytest.mark.parametrize("case", PARAMS)
def test_corpus_case(srv, case, mode):
    rng = random.Random(case["name"])
    data = send(srv, case["raw"], mode, rng)
    responses = split_responses(data)
    if "status" in case:
        assert len(responses) >= 1
        # Requests before the bad one are answered; the bad one gets the status; nothing after.
        assert responses[-1][0] == case["status"], (case["name"], data[:300])
        assert all(st == 200 for st, _ in responses[:-1])
        if "answered" in case:
            assert len(responses) == len(case["answered"]) + 1
    else:
        expect = case["expect"] if isinstance(case["expect"], list) else [case["expect"]]
        assert [st for st, _ in responses] == [200] * len(expect), (case["name"], data[:300])
        for (_, body), exp in zip(responses, expect):
            seen = json.loads(body)
            for key, value in exp.items():
                assert seen[key] == value, (case["name"], key, seen[key], value)
