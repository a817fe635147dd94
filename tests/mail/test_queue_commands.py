"""`flask queue ...` and `flask users make-admin` against a queue in a known state."""

import json
import re

import pytest

from tests.streams import abandon, run_until_settled

pytestmark = pytest.mark.sends_mail


@pytest.fixture
def known_state(shop, worker, smtp_server, redis_conn, queue, api):
    """One mail sent, one dead-lettered (550), three pending for a dead consumer, two unread."""
    shop.cancellation()
    worker.loop()  # sent
    refused = api.provider("Barbeiro Recusado")
    smtp_server.refuse(refused.email)
    dead = shop.cancellation(provider=refused)
    worker.loop()  # dead-lettered
    for _ in range(3):
        shop.cancellation()
    abandon(queue, consumer="gone-worker", idle_ms=600_000)
    for _ in range(2):
        shop.cancellation()
    return {"dead_event": shop.delivery(dead["id"]).event_id, "refused": refused}


def test_status_json_tells_the_true_figures(flask_cli, known_state):
    state = json.loads(flask_cli("queue", "status", "--json").output)

    default = next(s for s in state["streams"] if s["priority"] == "default")
    assert default["length"] == 5
    assert default["pending"] == 3
    assert default["lag"] == 2
    assert default["oldest_pending_age_s"] >= 0
    assert sorted((c["name"], c["pending"]) for c in default["consumers"]) == [
        ("gone-worker", 3),
        ("worker-test", 0),
    ]
    high = next(s for s in state["streams"] if s["priority"] == "high")
    assert (high["length"], high["pending"], high["lag"]) == (0, 0, 0)
    assert state["dead_letters"] == 1
    assert state["held"] == 0
    figures = {"scheduled": 0, "queued": 5, "sent": 1, "failed": 1, "held": 0, "canceled": 0}
    cancellation = state["deliveries"]["by_kind"]["cancellation"]
    assert (cancellation["total"], cancellation["last_hour"]) == (figures, figures)
    assert cancellation["next_due_ms"] is None
    # Every kind together: the cancelled appointments' reminders are canceled, not owed.
    owed = {status: figures[status] for status in ("scheduled", "queued", "sent", "failed", "held")}
    for period in ("total", "last_hour"):
        assert {status: state["deliveries"][period][status] for status in owed} == owed


def test_status_table_shows_the_same(flask_cli, known_state):
    output = flask_cli("queue", "status").output

    default_line = next(line for line in output.splitlines() if line.startswith("default"))
    assert default_line.split()[:4] == ["default", "5", "3", "2"]
    assert any(line.split()[:3] == ["default", "gone-worker", "3"] for line in output.splitlines())
    assert "dead letters: 1" in output
    # The booked appointments' reminders wait in Redis as retries do.
    assert re.search(r"^retries and scheduled mails waiting: \d+$", output, re.M)
    total = next(line for line in output.splitlines() if line.startswith("total"))
    assert total.split()[:7] == ["total", "0", "—", "5", "1", "1", "0"]
    cancellation = next(line for line in output.splitlines() if line.startswith("cancellation"))
    assert cancellation.split() == ["cancellation", "0", "—", "5", "1", "1", "0", "0"]


def test_dead_lists_event_recipient_attempts_and_error(flask_cli, known_state):
    letters = json.loads(flask_cli("queue", "dead", "--json").output)

    [letter] = letters
    assert letter["event_id"] == known_state["dead_event"]
    assert letter["kind"] == "cancellation"
    assert letter["recipient"] == known_state["refused"].email
    assert letter["attempts"] == 1
    assert letter["error"].startswith("550")
    assert letter["dead_at_ms"] > 0
    table = flask_cli("queue", "dead").output
    assert known_state["dead_event"] in table and "550" in table


def test_retry_sends_once_even_when_run_twice(
    flask_cli, known_state, worker, smtp_server, shop, redis_conn, queue
):
    smtp_server.mailbox.refuse_recipients.clear()  # the operator fixed the address
    before = len(smtp_server.messages)

    first = flask_cli("queue", "retry", known_state["dead_event"]).output
    second = flask_cli("queue", "retry", known_state["dead_event"]).output
    run_until_settled(  # the three held by gone-worker stay
        worker,
        lambda: redis_conn.xlen(queue.stream_key("default")) <= 3,
        what="the retried mail's entry to be acknowledged",
    )

    assert "1 mail(s) put back." in first
    assert "Nothing to retry." in second
    retried = [m for m in smtp_server.messages[before:] if "Recusado" in m["To"]]
    assert len(retried) == 1
    assert retried[0]["Message-ID"] == f"<{known_state['dead_event']}@gobarber.com>"
    assert redis_conn.xlen(queue.dead_key) == 0
    state = json.loads(flask_cli("queue", "status", "--json").output)
    assert state["deliveries"]["total"]["failed"] == 0


def test_retry_all(flask_cli, known_state, redis_conn, queue):
    output = flask_cli("queue", "retry", "--all").output
    assert f"queued again: {known_state['dead_event']}" in output
    assert redis_conn.xlen(queue.dead_key) == 0


def test_retry_needs_an_event_or_all(flask_cli):
    result = flask_cli("queue", "retry")
    assert result.exit_code == 2
    assert "give one EVENT_ID or --all" in result.output


def test_forget_consumer_requeues_what_it_held(
    flask_cli, known_state, worker, smtp_server, redis_conn, queue
):
    output = flask_cli("queue", "forget-consumer", "gone-worker").output
    assert "requeued 3 entries" in output
    names = [
        c["name"] for c in redis_conn.xinfo_consumers(queue.stream_key("default"), queue.group)
    ]
    assert "gone-worker" not in names
    before = len(smtp_server.messages)
    run_until_settled(
        worker,
        lambda: not redis_conn.xlen(queue.stream_key("default")),
        what="the requeued and unread entries to be acknowledged",
    )
    assert len(smtp_server.messages) == before + 5  # its three and the two unread


def test_forget_consumer_refuses_one_that_may_be_alive(flask_cli, shop, worker, redis_conn, queue):
    shop.cancellation()
    abandon(queue, consumer="busy-worker", idle_ms=0)
    result = flask_cli("queue", "forget-consumer", "busy-worker")
    assert result.exit_code == 1
    assert "may still be running" in result.output
    assert redis_conn.xpending(queue.stream_key("default"), queue.group)["pending"] == 1


def test_make_admin(flask_cli, api, app):
    person = api.person("Operadora")
    assert f"{person.email} is an admin." in flask_cli("users", "make-admin", person.email).output
    assert "no user with email" in flask_cli("users", "make-admin", "nobody@x.com").output
