"""Reminders as real processes: gunicorn books and cancels, two workers and two reapers
send what falls due, a Redis restarted empty loses nothing. Each test sets
MAIL_REMINDER_BEFORE so that its reminders fall due seconds after the booking."""

import time
from datetime import UTC, datetime

import pytest
import redis

from gobarber.testing import PrivateRedis, wait_until
from tests.mobile_client import Client
from tests.streams import deliveries, owed

pytestmark = [pytest.mark.postgres_only, pytest.mark.timeout(240)]

# Seconds from setting MAIL_REMINDER_BEFORE to the reminder's due time: room to start the
# web and book before it, so the booking finds it still ahead.
LEAD_S = 20


def remind_soon(processes, start):
    """Make reminders of `start` fall due LEAD_S seconds from now."""
    ahead = (start - datetime.now(UTC)).total_seconds()
    processes.env["MAIL_REMINDER_BEFORE"] = str(int(ahead) - LEAD_S)


def start_consumers(processes):
    for name in ("worker-1", "worker-2"):
        processes.worker(name)
    for name in ("reaper-1", "reaper-2"):
        processes.reaper(name)


def reminders(smtp_server):
    return [m for m in smtp_server.messages if m["Subject"] == "Lembrete de agendamento"]


def book(client, token, provider_id, start):
    booked = client.call(
        "POST", "/appointments", token, json={"provider_id": provider_id, "date": start.isoformat()}
    )
    assert booked.status_code == 200, booked.text
    return booked.json()["id"]


def reminder_of(client, token, appointment_id):
    return client.call("GET", f"/appointments/{appointment_id}", token).json()["reminder_mail"]


def past(moment):
    return datetime.now(UTC).timestamp() > moment


def due_of(shown):
    return datetime.fromisoformat(shown["due_at"].replace("Z", "+00:00")).timestamp()


def test_a_reminder_arrives_once_and_a_cancelled_ones_never(
    app, processes, smtp_server, slot, pipeline_env, queue
):
    start = slot(days=2, hour=10)
    remind_soon(processes, start)
    url = processes.web()
    start_consumers(processes)
    client = Client(url)
    _, token = client.person("Cliente Ana", "ana@barber.example.com")
    kept_with, _ = client.person("Barbeiro Zé", "ze@barber.example.com", provider=True)
    dropped_with, _ = client.person("Barbeiro Rui", "rui@barber.example.com", provider=True)
    kept = book(client, token, kept_with, start)
    dropped = book(client, token, dropped_with, start)  # the same hour: due together

    canceled = client.call("DELETE", f"/appointments/{dropped}", token).json()

    assert canceled["reminder_mail"]["status"] == "canceled"
    shown = reminder_of(client, token, kept)
    assert shown["status"] == "scheduled"
    due = due_of(shown)
    wait_until(lambda: reminders(smtp_server), timeout=LEAD_S + 40, what="the reminder")
    # Then the cancelled one's event falls due too, and every reaper pass that could
    # relay it goes by: the entries are all handled, and republish_after is past.
    settle = due + pipeline_env["MAIL_REPUBLISH_AFTER"] + 4 * pipeline_env["REAPER_INTERVAL"]
    wait_until(
        lambda: (
            past(settle)
            and owed(app) == 0
            and queue.redis.zcard(queue.due_key("default")) == 0
            and reminder_of(client, token, kept)["status"] == "sent"
        ),
        timeout=60,
        what="both reminders handled",
    )
    [mail] = reminders(smtp_server)
    assert "ana@barber.example.com" in mail["To"]
    assert "Barbeiro Zé" in mail.get_body(preferencelist=("plain",)).get_content()
    assert reminder_of(client, token, dropped)["status"] == "canceled"
    # The cancellation went to Rui; nothing else went anywhere.
    assert sorted(m["Subject"] for m in smtp_server.messages) == [
        "Agendamento cancelado",
        "Lembrete de agendamento",
    ]


def test_a_redis_restarted_empty_before_the_reminder_is_due_still_delivers_it(
    app, processes, smtp_server, slot, pipeline_env, queue, tmp_path
):
    private = PrivateRedis(tmp_path)
    private.start()
    processes.env["REDIS_URL"] = private.url
    control = redis.Redis.from_url(private.url, decode_responses=True)
    try:
        start = slot(days=2, hour=10)
        remind_soon(processes, start)
        url = processes.web(workers=1)
        start_consumers(processes)
        client = Client(url)
        _, token = client.person("Cliente Ana", "ana@barber.example.com")
        provider_id, _ = client.person("Barbeiro Zé", "ze@barber.example.com", provider=True)
        booked = book(client, token, provider_id, start)
        assert control.zcard(queue.due_key("default")) == 1
        due = due_of(reminder_of(client, token, booked))

        private.stop()  # no persistence: the scheduled reminder is gone
        private.start()
        assert control.zcard(queue.due_key("default")) == 0
        assert not past(due), "the restart came after the due time; raise LEAD_S"

        wait_until(lambda: reminders(smtp_server), timeout=LEAD_S + 60, what="the reminder")
        settle = (
            time.time() + pipeline_env["MAIL_REPUBLISH_AFTER"] + 4 * pipeline_env["REAPER_INTERVAL"]
        )
        wait_until(
            lambda: (
                past(settle)
                and owed(app, control) == 0
                and {row.status for row in deliveries(app)} == {"sent"}
            ),
            timeout=60,
            what="the reminder recorded as sent, a few reaper passes later",
        )
        assert len(reminders(smtp_server)) == 1
        assert len(smtp_server.messages) == 1
    finally:
        private.stop()
