"""`GET /health/mail`: a live worker's heartbeat, no entry pending too long, the SMTP server.

In-process with a worker whose `loop()` the test calls, then as real processes: a worker
killed with SIGKILL turns `/health/mail` red while `/health` stays green.
"""

import logging
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gobarber.mail.heartbeats import Heartbeats, heartbeat_ttl_s
from gobarber.shop_time import now
from gobarber.testing import free_port, wait_until
from tests.apps import private_app
from tests.mobile_client import Client
from tests.scrape import metric_values
from tests.streams import abandon

pytestmark = pytest.mark.sends_mail

TEN_MINUTES_MS = 600_000


def workers_alive_gauge(client):
    return metric_values(client)[("gobarber_mail_workers_alive", ())]


def test_a_worker_pass_makes_mail_health_200(app, client, worker, redis_conn):
    worker.loop()

    key = "{" + app.config["MAIL_STREAM_PREFIX"] + "}:mail:workers:worker-test"
    assert redis_conn.exists(key)
    response = client.get("/health/mail")
    assert response.status_code == 200, response.json
    assert response.json["status"] == "ok"
    assert response.json["checks"]["workers"] == {"ok": True, "count": 1, "alive": ["worker-test"]}
    assert response.json["checks"]["pending"]["ok"] is True
    assert response.json["checks"]["smtp"]["ok"] is True
    assert workers_alive_gauge(client) == 1


def test_no_worker_is_503_naming_the_workers(client):
    response = client.get("/health/mail")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["failing"] == ["workers"]
    assert response.json["checks"]["workers"] == {
        "ok": False,
        "error": "no live worker",
        "count": 0,
        "alive": [],
    }
    assert workers_alive_gauge(client) == 0


def test_a_clean_shutdown_takes_the_worker_off_at_once(client, worker):
    worker.loop()
    assert client.get("/health/mail").status_code == 200

    worker.shutdown()

    response = client.get("/health/mail")
    assert response.status_code == 503
    assert response.json["checks"]["workers"]["error"] == "no live worker"
    assert workers_alive_gauge(client) == 0


def test_a_heartbeat_outlives_the_longest_healthy_pass(app, worker, redis_conn):
    worker.loop()

    ttl_ms = redis_conn.pttl(worker.heartbeats.key(worker.name))
    config = app.config
    # A worker busy on a batch as long as the visibility timeout still counts as alive.
    assert ttl_ms > config["MAIL_VISIBILITY_TIMEOUT"] * 1000
    assert ttl_ms > 3 * config["MAIL_HEARTBEAT_INTERVAL"] * 1000


def test_an_entry_pending_for_ten_minutes_is_503_naming_its_age(client, worker, queue):
    created = int(now().timestamp() * 1000) - TEN_MINUTES_MS
    queue.publish(
        "default",
        {"event_id": str(uuid.uuid4()), "kind": "cancellation", "created_at": str(created)},
    )
    abandon(queue, idle_ms=TEN_MINUTES_MS)
    worker.loop()  # a live worker: only the old entry is wrong

    response = client.get("/health/mail")
    assert response.status_code == 503
    assert response.json["failing"] == ["pending"]
    pending = response.json["checks"]["pending"]
    assert pending["ok"] is False
    assert pending["error"] in ("oldest pending 600 s", "oldest pending 601 s")
    assert 600 <= pending["oldest_age_s"]["default"] < 605
    assert pending["oldest_age_s"]["high"] is None


def test_a_beat_on_a_redis_that_does_not_answer_is_skipped(app, caplog):
    heartbeats = Heartbeats(app)
    # Refused at once: nothing listens there, and no retries with backoff.
    heartbeats.redis = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))

    with caplog.at_level(logging.DEBUG, logger="gobarber.mail.heartbeats"):
        assert heartbeats.beat("worker-test") is False

    assert "heartbeat of worker-test skipped" in caplog.text


def test_mail_health_is_503_naming_redis_when_it_is_down(database_url, tmp_path, smtp_server):
    smtp = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_server.port}
    with private_app(database_url, tmp_path, **smtp) as (app, private):
        private.stop()

        response = app.test_client().get("/health/mail")

        assert response.status_code == 503
        assert response.json["failing"] == ["redis"]
        assert response.json["checks"]["redis"]["ok"] is False
        assert response.json["checks"]["smtp"]["ok"] is True


@pytest.fixture
def pipeline_env(pipeline_env):
    """The processes' settings, with a heartbeat every second."""
    return {**pipeline_env, "MAIL_HEARTBEAT_INTERVAL": 1}


@pytest.mark.postgres_only
@pytest.mark.timeout(120)  # real processes: its waits add up to 75 s
def test_a_killed_worker_turns_mail_health_red_and_leaves_health_green(processes, pipeline_env):
    http = Client(processes.web(workers=1))
    processes.worker("heartbeat-worker")

    answers = []

    def mail_health_is(status):
        answers.append(http.call("GET", "/health/mail"))
        return answers[-1].status_code == status

    wait_until(lambda: mail_health_is(200), timeout=30, what="/health/mail to answer 200")
    assert answers[-1].json()["checks"]["workers"]["alive"] == ["heartbeat-worker"]

    processes.kill("heartbeat-worker", signal.SIGKILL)
    killed_at = time.monotonic()
    ttl = heartbeat_ttl_s(pipeline_env)  # 4.2 s: 1 s interval, 0.2 s read, 3 s visibility
    wait_until(
        lambda: mail_health_is(503),
        timeout=ttl + 5,
        what=f"/health/mail to answer 503 once the {ttl} s heartbeat expires",
    )
    took = time.monotonic() - killed_at

    assert answers[-1].json()["failing"] == ["workers"]
    assert answers[-1].json()["checks"]["workers"]["error"] == "no live worker"
    assert took <= ttl + 2
    health = http.call("GET", "/health")
    assert health.status_code == 200, health.text


def count_noops(smtp_server):
    """Count the SMTP server's NOOPs from now on: the SMTP check sends one per connection."""
    noops = []

    async def handle_NOOP(server, session, envelope, arg):
        noops.append(session)
        return "250 OK"

    # aiosmtpd reads its handler's hooks afresh for every connection.
    smtp_server.mailbox.handle_NOOP = handle_NOOP
    return noops


def test_many_mail_health_hits_talk_to_the_smtp_server_once(app, client, smtp_server):
    noops = count_noops(smtp_server)

    answers = [client.get("/health/mail") for _ in range(5)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers += list(pool.map(lambda _: app.test_client().get("/health/mail"), range(16)))

    assert len(noops) == 1
    assert {answer.json["checks"]["smtp"]["ok"] for answer in answers} == {True}


def test_a_cached_smtp_failure_stays_a_failure(client, smtp_server):
    noops = count_noops(smtp_server)
    smtp_server.stop()
    first = client.get("/health/mail")
    smtp_server.start()

    again = client.get("/health/mail")

    assert first.json["checks"]["smtp"]["ok"] is False
    assert again.status_code == 503
    assert again.json["checks"]["smtp"] == first.json["checks"]["smtp"]
    assert noops == []


OUTSIDE = {"REMOTE_ADDR": "203.0.113.9"}


def test_an_smtp_error_is_hidden_from_callers_outside(client, smtp_server):
    smtp_server.stop()

    outside = client.get("/health/mail", environ_base=OUTSIDE)
    inside = client.get("/health/mail")

    assert outside.status_code == 503
    assert "smtp" in outside.json["failing"]
    assert outside.json["checks"]["smtp"] == {"ok": False, "error": "unreachable"}
    assert inside.json["checks"]["smtp"]["error"] not in ("unreachable", "")
    assert outside.json["checks"]["workers"] == inside.json["checks"]["workers"]


def test_mail_health_hides_the_redis_address_from_callers_outside(
    database_url, tmp_path, smtp_server
):
    smtp = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_server.port}
    with private_app(database_url, tmp_path, **smtp) as (app, private):
        private.stop()
        client = app.test_client()

        outside = client.get("/health/mail", environ_base=OUTSIDE)
        inside = client.get("/health/mail")

        assert outside.status_code == 503
        assert outside.json["failing"] == ["redis"]
        assert outside.json["checks"]["redis"] == {"ok": False, "error": "unreachable"}
        assert str(private.port) in inside.json["checks"]["redis"]["error"]
