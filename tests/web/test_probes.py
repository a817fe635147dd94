"""`GET /health` and `GET /metrics`."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gobarber.testing import wait_until
from tests.apps import private_app
from tests.mobile_client import Client
from tests.scrape import metric_values
from tests.streams import run_until_settled

pytestmark = pytest.mark.sends_mail


def test_health_is_200_when_everything_answers(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    for name in ("database", "redis"):
        assert response.json["checks"][name]["ok"] is True
        assert response.json["checks"][name]["latency_ms"] >= 0


def test_an_smtp_server_down_fails_mail_health_and_leaves_health_200(client, worker, smtp_server):
    worker.loop()  # a live worker: only the SMTP server is wrong
    smtp_server.stop()

    health = client.get("/health")
    assert health.status_code == 200
    assert "smtp" not in health.json["checks"]
    mail = client.get("/health/mail")
    assert mail.status_code == 503
    assert mail.json["failing"] == ["smtp"]
    assert mail.json["checks"]["smtp"]["ok"] is False


def test_health_follows_a_redis_that_stops_and_returns(database_url, tmp_path, smtp_server):
    smtp = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_server.port}
    with private_app(database_url, tmp_path, **smtp) as (app, private):
        client = app.test_client()
        assert client.get("/health").status_code == 200

        private.stop()
        down = client.get("/health")
        assert down.status_code == 503
        assert down.json["failing"] == ["redis"]
        assert down.json["checks"]["redis"]["ok"] is False

        private.start()
        assert client.get("/health").status_code == 200


def test_metrics_parse_and_count_the_pipeline(client, shop, worker, smtp_server, redis_conn, queue):
    shop.cancellation()
    worker.loop()  # sent
    smtp_server.fail_next(1)
    shop.cancellation()  # a 451: failed once, retried, then sent
    refused = shop.api.provider("Recusado")
    smtp_server.refuse(refused.email)
    shop.cancellation(provider=refused)  # a 550: failed once, dead
    run_until_settled(
        worker,
        lambda: len(smtp_server.messages) == 2 and redis_conn.xlen(queue.dead_key) == 1,
        what="two mails sent and one dead letter",
    )

    values = metric_values(client)
    kind = (("kind", "cancellation"),)
    assert values[("gobarber_mail_queued_total", kind)] == 3
    assert values[("gobarber_mail_failed_total", kind)] == 2
    assert values[("gobarber_mail_retried_total", kind)] == 1
    assert values[("gobarber_mail_dead_total", kind)] == 1
    assert values[("gobarber_mail_sent_total", kind)] == 2
    assert values[("gobarber_mail_cancel_to_accepted_seconds_count", kind)] == 2
    assert values[("gobarber_mail_dead_letters", ())] == 1
    cancels = (
        ("method", "DELETE"),
        ("route", "/appointments/<id:appointment_id>"),
        ("status", "200"),
    )
    assert values[("gobarber_http_requests_total", cancels)] == 3
    assert ("gobarber_mail_pending", (("priority", "default"),)) in values


@pytest.mark.postgres_only
@pytest.mark.timeout(180)  # real processes: its waits add up to 100 s (it took 4-8 s)
def test_metrics_are_right_with_two_gunicorn_workers_and_a_mail_worker(
    slot, smtp_server, processes
):
    url = processes.web(workers=2)
    http = Client(url)
    _, token = http.person("Cliente", "cliente@barber.example.com")
    ids = http.book_many(30, token, slot)
    processes.worker("metrics-worker")
    for appointment_id in ids:
        assert http.call("DELETE", f"/appointments/{appointment_id}", token).status_code == 200
    wait_until(lambda: len(smtp_server.messages) == 30, timeout=60, what="30 mails")

    def sent_counter():
        text = http.call("GET", "/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "gobarber_mail_sent_total":
                    return sample.value
        return 0

    assert wait_until(lambda: sent_counter() == 30, timeout=10, what="sent counter 30")

    def deletes_counted():
        text = http.call("GET", "/metrics").text
        return sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "gobarber_http_requests_total" and s.labels["method"] == "DELETE"
        )

    # Each worker publishes its counts within a second; the scrape sees them all by then.
    wait_until(lambda: deletes_counted() >= 30, timeout=10, what="30 DELETEs counted")
    assert deletes_counted() == 30


OUTSIDE = {"REMOTE_ADDR": "203.0.113.9"}
HEALTH_TOKEN = "health-token-of-the-monitoring-host"


@pytest.mark.parametrize(
    ("environ", "headers", "shown"),
    [
        ({}, {}, True),  # loopback
        (OUTSIDE, {}, False),
        (OUTSIDE, {"Authorization": f"Bearer {HEALTH_TOKEN}"}, True),
        (OUTSIDE, {"Authorization": f"Bearer {HEALTH_TOKEN}x"}, False),
        (OUTSIDE, {"Authorization": HEALTH_TOKEN}, False),
    ],
    ids=["loopback", "outside", "outside-with-token", "wrong-token", "no-bearer"],
)
def test_health_names_the_redis_address_only_to_those_allowed(
    database_url, tmp_path, environ, headers, shown
):
    with private_app(database_url, tmp_path, HEALTH_TOKEN=HEALTH_TOKEN) as (app, private):
        private.stop()

        down = app.test_client().get("/health", environ_base=environ, headers=headers)

        assert down.status_code == 503
        assert down.json["failing"] == ["redis"]
        error = down.json["checks"]["redis"]["error"]
        if shown:
            assert f"127.0.0.1:{private.port}" in error
        else:
            assert down.json["checks"]["redis"] == {"ok": False, "error": "unreachable"}
        assert down.json["checks"]["database"]["ok"] is True
