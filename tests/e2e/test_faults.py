"""Faults production brings, against real processes: poison from another producer, a
Redis demoted to read-only, Redis down when the processes start, an SMTP outage longer
than the visibility timeout, and an operator's second Ctrl-C."""

import json
import signal
import subprocess
import sys
import time

import pytest
import redis

from gobarber.extensions import mail_queue
from gobarber.testing import PrivateRedis, free_port, wait_until
from tests.flows import cancel_all
from tests.mobile_client import Client
from tests.streams import deliveries, owed

pytestmark = [pytest.mark.postgres_only, pytest.mark.timeout(300)]

NOT_UTF8 = b"\xff\xfe\xfd"


def message_ids(smtp_server):
    return [message["Message-ID"] for message in smtp_server.messages]


def expected_ids(app):
    return {f"<{row.event_id}@gobarber.com>" for row in deliveries(app)}


def all_delivered(app, smtp_server, *, timeout, what, queue_redis=None):
    wanted = expected_ids(app)
    wait_until(lambda: wanted <= set(message_ids(smtp_server)), timeout=timeout, what=what)
    # The SMTP server has a mail a moment before the worker records it as sent.
    wait_until(lambda: owed(app, queue_redis) == 0, timeout=30, what="no pending entries")
    assert {row.status for row in deliveries(app)} == {"sent"}


def queue_lag(app):
    """Entries no consumer has read yet, over both priority streams."""
    return sum(state["lag"] or 0 for state in mail_queue.get(app).state())


def test_poison_from_another_producer_does_not_stop_the_line(
    app, processes, smtp_server, slot, queue, pipeline_env
):
    url = processes.web(workers=1)
    client = Client(url)
    _, token = client.person("Cliente", "cliente@barber.example.com")
    ids = client.book_many(12, token, slot)
    raw = redis.Redis.from_url(pipeline_env["REDIS_URL"])
    queue.ensure_group()
    for priority in ("high", "default"):
        raw.xadd(queue.stream_key(priority), {b"event_id": NOT_UTF8, b"kind": b"cancellation"})
        raw.xadd(queue.stream_key(priority), {b"redeliveries": b"many", NOT_UTF8: NOT_UTF8})
    # One more taken by a consumer that died with it: the reaper meets it too.
    raw.xadd(queue.stream_key("default"), {b"event_id": NOT_UTF8})
    raw.xreadgroup(queue.group, "died", {queue.stream_key("default"): ">"}, count=100)
    worker, reaper = processes.worker("worker-1"), processes.reaper()

    assert cancel_all(client, token, ids) == [200] * 12

    all_delivered(app, smtp_server, timeout=60, what="every genuine mail")
    wait_until(lambda: queue.redis.xlen(queue.dead_key) == 5, timeout=30, what="5 dead letters")
    assert worker.poll() is None and reaper.poll() is None
    metrics = client.call("GET", "/metrics")
    assert metrics.status_code == 200
    assert "gobarber_mail_dead_letters 5.0" in metrics.text
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "gobarber:create_app",
            "queue",
            "status",
            "--json",
        ],
        env=processes.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["dead_letters"] == 5


def test_redis_turned_read_only_mid_run(app, processes, smtp_server, slot, tmp_path):
    private = PrivateRedis(tmp_path)
    private.start()
    processes.env["REDIS_URL"] = private.url
    control = redis.Redis.from_url(private.url, decode_responses=True)
    try:
        url = processes.web(workers=1)
        client = Client(url)
        _, token = client.person("Cliente", "cliente@barber.example.com")
        ids = client.book_many(20, token, slot)
        worker, reaper = processes.worker("worker-1"), processes.reaper()
        assert cancel_all(client, token, ids[:10]) == [200] * 10
        # Both past their start-up check, which would wait for a writable Redis instead.
        wait_until(
            lambda: (
                " reading " in processes.log("worker-1") and " watching " in processes.log("reaper")
            ),
            timeout=30,
            what="worker and reaper to start",
        )

        # A failover demotes the node: it follows a primary nobody runs, refusing writes.
        control.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        assert cancel_all(client, token, ids[10:]) == [200] * 10
        wait_until(
            lambda: (
                "ReadOnlyError" in processes.log("worker-1")
                and "ReadOnlyError" in processes.log("reaper")
            ),
            timeout=30,
            what="both consumers to meet the read-only node",
        )
        control.execute_command("REPLICAOF", "NO", "ONE")

        all_delivered(app, smtp_server, timeout=90, what="every mail", queue_redis=control)
        assert worker.poll() is None and reaper.poll() is None
    finally:
        private.stop()


def test_processes_started_while_redis_is_down_come_up_when_it_starts(
    app, processes, smtp_server, slot, tmp_path
):
    private = PrivateRedis(tmp_path)  # its port reserved; nothing listens there yet
    processes.env["REDIS_URL"] = private.url
    try:
        url = processes.web(workers=1)  # bookings need no Redis
        worker, reaper = processes.worker("worker-1"), processes.reaper()
        wait_until(
            lambda: (
                f"Redis at 127.0.0.1:{private.port} unreachable" in processes.log("worker-1")
                and "waiting until it answers" in processes.log("reaper")
            ),
            timeout=30,
            what="worker and reaper to say they wait for Redis",
        )
        client = Client(url)
        _, token = client.person("Cliente", "cliente@barber.example.com")
        ids = client.book_many(5, token, slot)
        assert cancel_all(client, token, ids) == [200] * 5  # kept in the outbox

        private.start()

        control = redis.Redis.from_url(private.url, decode_responses=True)
        all_delivered(app, smtp_server, timeout=60, what="every mail", queue_redis=control)
        assert worker.poll() is None and reaper.poll() is None
    finally:
        private.stop()


def test_an_smtp_outage_longer_than_the_visibility_timeout_costs_only_delay(
    app, processes, smtp_server, slot, pipeline_env
):
    processes.env.update(MAIL_RETRY_BASE="0.5", MAIL_RETRY_MAX="4", MAIL_MAX_ATTEMPTS="8")
    visibility = pipeline_env["MAIL_VISIBILITY_TIMEOUT"]
    url = processes.web(workers=1)
    client = Client(url)
    _, token = client.person("Cliente", "cliente@barber.example.com")
    ids = client.book_many(10, token, slot)
    processes.worker("worker-1")
    processes.reaper()
    smtp_server.stop()
    down_since = time.monotonic()

    assert cancel_all(client, token, ids) == [200] * 10
    wait_until(
        lambda: (
            time.monotonic() - down_since > 3 * visibility
            and min(row.attempts for row in deliveries(app)) >= 3
        ),
        timeout=60,
        what=f"an outage of over {3 * visibility}s with three attempts a mail",
    )
    smtp_server.start()

    all_delivered(app, smtp_server, timeout=60, what="every mail after the outage")
    assert len(set(message_ids(smtp_server))) == 10
    assert client.call("GET", "/notifications", token).json() == []  # nobody told "failed"


def test_a_second_sigterm_stops_the_worker_at_once(app, processes, smtp_server, slot):
    url = processes.web(workers=1)
    client = Client(url)
    _, token = client.person("Cliente", "cliente@barber.example.com")
    ids = client.book_many(5, token, slot)
    assert cancel_all(client, token, ids) == [200] * 5
    smtp_server.mailbox.delay = 30  # the server takes its time over each mail
    worker = processes.worker("worker-1")
    wait_until(
        lambda: "reading" in processes.log("worker-1"), timeout=30, what="the worker to start"
    )
    wait_until(lambda: smtp_server.mailbox.sending_now > 0, timeout=30, what="mails being sent")

    worker.send_signal(signal.SIGTERM)  # warm: would finish the mails in hand (30 s)
    wait_until(
        lambda: "SIGTERM: finishing the entry in hand" in processes.log("worker-1"),
        timeout=10,
        what="the worker to take the first SIGTERM",
    )
    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)  # cold: now
    worker.wait(timeout=10)
    assert time.monotonic() - stopped_at < 5
    assert "second SIGTERM; stopping now" in processes.log("worker-1")

    smtp_server.mailbox.delay = 0
    processes.worker("worker-1-again")
    processes.reaper()  # hands over what worker-1 held, after the visibility timeout
    all_delivered(app, smtp_server, timeout=60, what="every mail after the restart")
