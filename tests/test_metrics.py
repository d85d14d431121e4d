"""Prometheus metrics from the master (issue 9), parsed with prometheus_client's own parser:
counts exact across two workers and a worker killed and replaced."""

from __future__ import annotations

import os
import re
import signal
import threading
import urllib.request

import pytest
import requests

from conftest import Server, read_response

parser = pytest.importorskip("prometheus_client.parser")

METRICS_RE = re.compile(r"Metrics at: http://([\d.]+:\d+)/metrics")


def scrape(addr: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(samples: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def hammer(srv: Server, clients: int, each: int) -> None:
    errors: list[str] = []

    def run(t: int) -> None:
        with requests.Session() as s:
            for i in range(each):
                try:
                    path = "/" if i % 4 else "/nowhere"
                    r = s.post(srv.url(path), data=b"x") if i % 10 == 0 else s.get(srv.url(path))
                    assert r.status_code in (200, 404)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(t,)) for t in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_counts_are_exact_across_workers_and_a_restart(serve):
    srv = serve("--workers", "2", "--metrics-bind", "127.0.0.1:0", "basic:application")
    addr = srv.wait_for(METRICS_RE).group(1)
    srv.wait_workers_ready()
    hammer(srv, 6, 50)  # 300 requests over 6 connections, both workers
    m = scrape(addr)
    assert total(m, "fulmen_requests_total") == 300
    assert total(m, "fulmen_requests_total", status="4xx", method="GET") == 6 * 10  # i % 4 == 0 and i % 10 != 0
    assert total(m, "fulmen_requests_total", method="POST") == 6 * 5
    assert total(m, "fulmen_request_duration_seconds_count") == 300
    assert total(m, "fulmen_request_duration_seconds_bucket", le="+Inf") == 300
    assert total(m, "fulmen_connections_accepted_total") >= 6
    assert total(m, "fulmen_workers") == 2
    assert total(m, "fulmen_requests_in_flight") == 0
    assert total(m, "fulmen_bytes_sent_total") > 300 * 50

    # Refused requests, by status.
    for _ in range(3):
        with srv.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            assert read_response(s)[0] == 400
    assert total(scrape(addr), "fulmen_bad_requests_total", status="400") == 3

    # One worker killed: its totals stay, the replacement adds to them.
    victim = srv.worker_pids()[0]
    start = len(srv.lines)
    os.kill(victim, signal.SIGKILL)
    srv.wait_for(r"Worker \d+ ready", start=start)
    hammer(srv, 4, 25)
    m = scrape(addr)
    assert total(m, "fulmen_requests_total") == 300 + 100  # refused by the parser: bad_requests only
    assert total(m, "fulmen_worker_restarts_total", reason="crashed") == 1
    assert total(m, "fulmen_workers") == 2


def test_only_metrics_is_served_there(serve):
    srv = serve("--metrics-bind", "127.0.0.1:0", "basic:application")
    addr = srv.wait_for(METRICS_RE).group(1)
    host, port = addr.split(":")
    assert requests.get(f"http://{addr}/other", timeout=10).status_code == 404
    assert requests.post(f"http://{addr}/metrics", timeout=10).status_code == 405
    # The metrics port is the master's alone: no worker holds it.
    for pid in srv.worker_pids():
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        master_sockets = {os.readlink(f"/proc/{srv.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{srv.proc.pid}/fd")}
        assert len(master_sockets - inodes) >= 1


def test_a_busy_port_is_one_line_and_no_traceback(serve):
    srv = serve("--metrics-bind", "127.0.0.1:0", "basic:application")
    addr = srv.wait_for(METRICS_RE).group(1)
    second = serve("--metrics-bind", addr, "basic:application", expect_fail=True)
    assert second.proc.wait(timeout=30) != 0
    second._reader.join(timeout=10)
    assert any("--metrics-bind" in line and "in use" in line for line in second.lines), second.lines
    assert not any("Traceback" in line for line in second.lines), second.lines
