"""Request counting against a hung Redis, odd HTTP methods and bad counters in Redis.

A request never waits on Redis to be counted, a failed publication is neither lost nor
counted twice, and no client can break `/metrics` or add series to it at will.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gobarber.extensions import redis_store
from gobarber.testing import ROOT, wait_until
from tests.apps import private_app

METHOD_LABELS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
OPENAPI = {"method": "GET", "route": "/openapi.json", "status": "200"}


def http_requests(text):
    """Return the `gobarber_http_requests_total` samples of a Prometheus text page."""
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gobarber_http_requests_total"
    ]


def count_of(samples, **labels):
    """Sum the samples whose labels include `labels`."""
    return sum(s.value for s in samples if labels.items() <= s.labels.items())


def scrape(client):
    response = client.get("/metrics")
    assert response.status_code == 200, response.data[:500]
    return http_requests(response.data.decode())


@contextmanager
def stopped(private):
    """Freeze the redis-server (SIGSTOP): it accepts connections and never answers."""
    os.kill(private.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(private.process.pid, signal.SIGCONT)


def test_a_hung_redis_does_not_slow_requests_and_their_counts_arrive_later(database_url, tmp_path):
    # The default socket timeout: a request that waited on Redis would take 5 s.
    with private_app(database_url, tmp_path, REDIS_SOCKET_TIMEOUT=5) as (app, private):
        client = app.test_client()
        assert client.get("/openapi.json").status_code == 200
        wait_until(
            lambda: count_of(scrape(client), **OPENAPI) == 1, timeout=10, what="the first count"
        )

        durations = []
        with stopped(private):
            for _ in range(5):
                started = time.perf_counter()
                assert client.get("/openapi.json").status_code == 200
                durations.append(time.perf_counter() - started)
        assert max(durations) < 1.0, f"requests took {durations} s with Redis hung"

        wait_until(
            lambda: count_of(scrape(client), **OPENAPI) >= 6,
            timeout=15,
            what="the counts made while Redis was hung",
        )
        assert count_of(scrape(client), **OPENAPI) == 6


def test_a_publication_that_timed_out_is_counted_once(database_url, tmp_path, caplog):
    # The flush reaches the frozen server and times out: Redis may still apply it when it
    # wakes, so the retry must not add the same requests again.
    caplog.set_level(logging.WARNING, logger="gobarber.metrics")
    with private_app(database_url, tmp_path, REDIS_SOCKET_TIMEOUT=1, MAIL_BLOCK_MS=500) as (
        app,
        private,
    ):
        client = app.test_client()
        assert client.get("/openapi.json").status_code == 200
        wait_until(
            lambda: count_of(scrape(client), **OPENAPI) == 1, timeout=10, what="the first count"
        )

        with stopped(private):
            for _ in range(3):
                assert client.get("/openapi.json").status_code == 200
            wait_until(
                lambda: any("not published" in r.getMessage() for r in caplog.records),
                timeout=10,
                what="a publication to time out",
            )

        wait_until(
            lambda: count_of(scrape(client), **OPENAPI) >= 4,
            timeout=15,
            what="the counts made while Redis was hung",
        )
        assert count_of(scrape(client), **OPENAPI) == 4


def test_counts_made_while_redis_is_down_are_kept_for_when_it_returns(
    database_url, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="gobarber.metrics")
    with private_app(database_url, tmp_path) as (app, private):
        client = app.test_client()
        assert client.get("/openapi.json").status_code == 200
        wait_until(
            lambda: count_of(scrape(client), **OPENAPI) == 1, timeout=10, what="the first count"
        )

        private.stop()  # what it held is gone; connections are refused
        for _ in range(3):
            assert client.get("/openapi.json").status_code == 200
        wait_until(
            lambda: any("not published" in r.getMessage() for r in caplog.records),
            timeout=10,
            what="a publication to fail",
        )
        private.start()

        wait_until(
            lambda: count_of(scrape(client), **OPENAPI) >= 3,
            timeout=15,
            what="the counts made while Redis was down",
        )
        assert count_of(scrape(client), **OPENAPI) == 3


EXITING_PROCESS = """
import sys
from pathlib import Path

from gobarber import create_app, metrics
from tests.apps import make_config

metrics.FLUSH_INTERVAL_S = 3600  # only the flush at exit can publish
database_url, tmp_path, prefix = sys.argv[1:]
app = create_app(make_config(database_url, Path(tmp_path), MAIL_STREAM_PREFIX=prefix))
client = app.test_client()
for _ in range(3):
    assert client.get("/openapi.json").status_code == 200
"""


def test_a_process_publishes_its_counts_as_it_exits(app, database_url, tmp_path):
    prefix = app.config["MAIL_STREAM_PREFIX"]
    subprocess.run(
        [sys.executable, "-c", EXITING_PROCESS, database_url, str(tmp_path), prefix],
        cwd=ROOT,
        check=True,
        timeout=30,
    )
    counts = redis_store.get(app).hgetall("{" + prefix + "}:metrics:http")
    assert counts == {"GET|/openapi.json|200": "3"}


def test_bad_counters_in_redis_are_skipped_and_logged_once(app, client, caplog):
    key = "{" + app.config["MAIL_STREAM_PREFIX"] + "}:metrics:http"
    redis_store.get(app).hset(
        key,
        mapping={
            "GET|X|<unmatched>|405": 1,  # what a `GET|X` request left before the fix
            "GET|/providers|200": "many",
            "nonsense": 3,
            "PUT|/users|abc": 2,
            "DELETE|/appointments/<id:appointment_id>|200": 7,
        },
    )
    samples = scrape(client)

    deleted = {"method": "DELETE", "route": "/appointments/<id:appointment_id>", "status": "200"}
    assert count_of(samples, **deleted) == 7
    assert {s.labels["method"] for s in samples} == {"DELETE"}
    warnings = [r for r in caplog.records if r.name == "gobarber.metrics"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "skipped 4 " in warnings[0].getMessage()


def raw_status(url, method, path):
    """Send one request with `method` as written, over a socket; return the status code."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = conn.recv(4096).decode(errors="replace")
    return int(head.split(" ", 2)[1])


@pytest.mark.postgres_only
@pytest.mark.timeout(120)  # a real gunicorn: its start and the waits below
def test_invented_http_methods_neither_break_metrics_nor_add_series(app, processes):
    url = processes.web(workers=2)
    invented = ["GET|X", *(f"INVENTED{n}" for n in range(200))]
    statuses = {raw_status(url, method, "/openapi.json") for method in invented}
    assert statuses == {405}

    def others():
        response = requests.get(f"{url}/metrics", timeout=10)
        assert response.status_code == 200, response.text[:500]
        return count_of(http_requests(response.text), method="other") == len(invented)

    wait_until(others, timeout=15, what=f"{len(invented)} requests counted as `other`")
    samples = http_requests(requests.get(f"{url}/metrics", timeout=10).text)
    assert {s.labels["method"] for s in samples} <= METHOD_LABELS
    assert len(samples) <= 3, [s.labels for s in samples]  # GET 200, other 405, maybe HEAD
    # Nor in Redis, where an invented method would be a field kept forever.
    fields = redis_store.get(app).hkeys("{" + app.config["MAIL_STREAM_PREFIX"] + "}:metrics:http")
    assert {field.split("|")[0] for field in fields} <= METHOD_LABELS, fields
    assert len(fields) <= 3, fields


def test_a_hung_redis_does_not_hold_up_the_counts_of_another(app, client, database_url, tmp_path):
    """Two apps in one process (as the test suite, or a process with two Redis clients):
    the counts for the one whose Redis hangs must not keep the other's scrape from
    showing its own, which it publishes first."""
    with private_app(database_url, tmp_path, REDIS_SOCKET_TIMEOUT=5) as (hung_app, private):
        hung = hung_app.test_client()
        assert hung.get("/openapi.json").status_code == 200
        wait_until(lambda: count_of(scrape(hung), **OPENAPI) == 1, timeout=10, what="a count")
        with stopped(private):
            # Its count waits: the counting thread is stuck on it for the socket timeout.
            assert hung.get("/openapi.json").status_code == 200
            for number in range(1, 4):
                assert client.get("/openapi.json").status_code == 200
                # One scrape each, no polling: its flush must not wait on the hung Redis.
                assert count_of(scrape(client), **OPENAPI) == number
