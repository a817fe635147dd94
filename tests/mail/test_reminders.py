"""Appointment reminders: an outbox row written with the booking, scheduled in Redis, put
on the stream by `release_due` when due, and sent to the customer unless the appointment
was cancelled. Real PostgreSQL, Redis and SMTP; worker and reaper passes driven by hand."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from consumers.loop import Stop
from consumers.reaper import Reaper
from consumers.worker import MailWorker
from gobarber.extensions import db
from gobarber.mail import outbox
from gobarber.models import Appointment, MailDelivery
from gobarber.testing import wait_until
from tests.streams import insert_deliveries, owed, run_until_settled
from tests.wording import MONTHS_PT_BR

pytestmark = pytest.mark.sends_mail

DAY = 86_400


@pytest.fixture
def config_overrides():
    # pipeline_config turns reminders off for the cancellation tests; here they are on.
    return {"MAIL_REMINDER_BEFORE": DAY, "REAPER_INTERVAL": 0.05}


@pytest.fixture
def people(api):
    return api.provider("Barbeiro Zé"), api.person("Cliente Ana")


def reminder_row(app, appointment_id):
    """The appointment's reminder row, read fresh, or None."""
    with app.app_context():
        row = db.session.scalar(
            select(MailDelivery).where(
                MailDelivery.appointment_id == appointment_id, MailDelivery.kind == "reminder"
            )
        )
        db.session.expunge_all()
        return row


def due_in(app, start, seconds):
    """Set MAIL_REMINDER_BEFORE so that a reminder of `start` falls due in `seconds`."""
    app.config["MAIL_REMINDER_BEFORE"] = int((start - datetime.now(UTC)).total_seconds()) - seconds


def wording(start):
    """`dia 05 de agosto, às 10:00h` of a shop-local start, written out by hand."""
    return f"dia {start.day:02d} de {MONTHS_PT_BR[start.month - 1]}, às {start.hour}:00h"


def reminders_received(smtp_server):
    return [m for m in smtp_server.messages if m["Subject"] == "Lembrete de agendamento"]


def shown_reminder(client, person, appointment_id):
    answer = client.get(f"/appointments/{appointment_id}", headers=person.headers)
    assert answer.status_code == 200, answer.json
    return answer.json["reminder_mail"]


def ms(moment):
    return int(moment.timestamp() * 1000)


def test_a_booking_schedules_one_reminder_off_the_stream(app, client, api, people, slot, queue):
    provider, customer = people
    start = slot(days=3, hour=10)

    booked = api.book(customer, provider, start)

    assert booked.status_code == 200, booked.json
    row = reminder_row(app, booked.json["id"])
    assert (row.status, row.recipient) == ("queued", customer.email)
    assert row.due_at == start - timedelta(days=1)
    assert row.published_at is not None and row.stream_entry_id is None
    assert queue.redis.hgetall(queue.delayed_key(row.event_id))["kind"] == "reminder"
    assert queue.redis.zscore(queue.due_key("default"), row.event_id) == ms(row.due_at)
    assert queue.redis.xlen(queue.stream_key("default")) == 0
    shown = shown_reminder(client, customer, booked.json["id"])
    assert shown["status"] == "scheduled"
    assert shown["due_at"] == row.due_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert shown["sent_at"] is None


def test_only_a_reminder_still_ahead_is_written(app, api, people, slot, queue):
    provider, customer = people
    app.config["MAIL_REMINDER_BEFORE"] = 0  # off
    off = api.book(customer, provider, slot(days=3, hour=10)).json
    app.config["MAIL_REMINDER_BEFORE"] = 3 * DAY  # due two days ago
    passed = api.book(customer, provider, slot(days=1, hour=10)).json
    ahead = api.book(customer, provider, slot(days=4, hour=10)).json

    assert reminder_row(app, off["id"]) is None
    assert reminder_row(app, passed["id"]) is None
    assert reminder_row(app, ahead["id"]) is not None
    assert queue.redis.zcard(queue.due_key("default")) == 1


def test_a_due_reminder_goes_to_the_customer_once_in_pt_br(
    app, client, api, people, slot, worker, smtp_server
):
    provider, customer = people
    start = slot(days=1, hour=10)
    due_in(app, start, 2)
    booked = api.book(customer, provider, start).json
    assert shown_reminder(client, customer, booked["id"])["status"] == "scheduled"

    run_until_settled(worker, lambda: smtp_server.messages, what="the reminder", timeout=15)
    run_until_settled(
        worker, lambda: reminder_row(app, booked["id"]).status == "sent", what="it recorded"
    )

    [mail] = smtp_server.messages
    assert mail["Subject"] == "Lembrete de agendamento"
    assert customer.email in mail["To"]
    assert smtp_server.envelopes[0].rcpt_tos == [customer.email]
    for part in ("plain", "html"):
        text = mail.get_body(preferencelist=(part,)).get_content()
        assert "Olá, " in text and "Cliente Ana" in text
        assert "Barbeiro Zé" in text
        assert wording(start) in text
        assert "2 horas antes" in text
    shown = shown_reminder(client, customer, booked["id"])
    assert (shown["status"], shown["attempts"]) == ("sent", 1)
    assert owed(app) == 0


def test_a_cancelled_appointments_reminder_is_never_sent(
    app, client, api, people, slot, worker, queue, smtp_server
):
    provider, customer = people
    start = slot(days=1, hour=10)
    due_in(app, start, 1)
    booked = api.book(customer, provider, start).json

    canceled = client.delete(f"/appointments/{booked['id']}", headers=customer.headers)

    assert canceled.json["reminder_mail"]["status"] == "canceled"
    row = reminder_row(app, booked["id"])
    assert row.status == "canceled"
    # The race the row guards against: the event reaches the stream anyway, and falls due.
    queue.publish("default", outbox.entry_fields(row))
    wait_until(lambda: datetime.now(UTC) > row.due_at, timeout=10, what="the due time")
    run_until_settled(
        worker,
        lambda: owed(app) == 0 and queue.redis.zcard(queue.due_key("default")) == 0,
        what="every reminder entry handled",
    )
    wait_until(lambda: len(smtp_server.messages) == 1, timeout=10, what="the cancellation mail")
    assert reminders_received(smtp_server) == []
    assert smtp_server.envelopes[0].rcpt_tos == [provider.email]
    assert reminder_row(app, booked["id"]).sent_at is None
    assert shown_reminder(client, customer, booked["id"])["status"] == "canceled"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"canceled_at": datetime.now(UTC)}, "appointment canceled"),
        ({"date": datetime.now(UTC) - timedelta(minutes=5)}, "appointment already started"),
    ],
)
def test_a_reminder_no_longer_owed_when_it_reaches_the_worker_is_voided(
    app, api, people, slot, worker, queue, smtp_server, change, reason
):
    provider, customer = people
    booked = api.book(customer, provider, slot(days=3, hour=10)).json
    with app.app_context():
        # Written behind the service's back: only the worker's own check stands in the way.
        db.session.execute(
            update(Appointment).where(Appointment.id == booked["id"]).values(**change)
        )
        db.session.commit()
    queue.publish("default", outbox.entry_fields(reminder_row(app, booked["id"])))

    worker.loop()

    row = reminder_row(app, booked["id"])
    assert (row.status, row.last_error) == ("canceled", reason)
    assert smtp_server.messages == []
    assert owed(app) == 0


def test_a_reminder_redis_lost_before_it_was_due_is_still_sent_once(
    app, client, api, people, slot, worker, reaper, queue, smtp_server
):
    provider, customer = people
    app.config["MAIL_REPUBLISH_AFTER"] = 1
    start = slot(days=1, hour=10)
    due_in(app, start, 2)
    booked = api.book(customer, provider, start).json
    row = reminder_row(app, booked["id"])
    # What a Redis restarted empty no longer holds.
    queue.redis.delete(queue.delayed_key(row.event_id))
    queue.redis.zrem(queue.due_key("default"), row.event_id)

    def passes():
        reaper.loop()
        worker.loop()
        return reminders_received(smtp_server)

    wait_until(passes, timeout=20, what="the relay to put the lost reminder back")
    wait_until(
        lambda: reminder_row(app, booked["id"]).status == "sent", timeout=10, what="it recorded"
    )
    deadline = time.monotonic() + 1.5  # the relay's next looks find it sent
    while time.monotonic() < deadline:
        passes()

    assert len(reminders_received(smtp_server)) == 1
    assert shown_reminder(client, customer, booked["id"])["status"] == "sent"


def test_a_reminder_never_published_is_rescheduled_not_sent_early(
    app, api, people, slot, reaper, queue
):
    provider, customer = people
    booked = api.book(customer, provider, slot(days=3, hour=10)).json
    row = reminder_row(app, booked["id"])
    # As if Redis had not answered the booking: the row alone, never published.
    queue.redis.delete(queue.delayed_key(row.event_id))
    queue.redis.zrem(queue.due_key("default"), row.event_id)
    with app.app_context():
        db.session.execute(
            update(MailDelivery).where(MailDelivery.id == row.id).values(published_at=None)
        )
        db.session.commit()

    reaper.loop()

    assert queue.redis.zscore(queue.due_key("default"), row.event_id) == ms(row.due_at)
    assert queue.redis.exists(queue.delayed_key(row.event_id))
    assert queue.redis.xlen(queue.stream_key("default")) == 0
    assert reminder_row(app, booked["id"]).published_at is not None


def insert_reminders(app, appointment_id, recipient, count, due_at):
    """Write `count` reminder rows of one appointment, as published; return their fields."""
    rows = insert_deliveries(
        app,
        count,
        kind="reminder",
        appointment_id=appointment_id,
        recipient=recipient,
        due_at=due_at,
    )
    with app.app_context():
        query = select(MailDelivery).where(MailDelivery.event_id.in_([r["event_id"] for r in rows]))
        fields = [outbox.entry_fields(row) for row in db.session.scalars(query)]
        db.session.expunge_all()
    return fields


def test_reminders_due_in_the_future_do_not_crowd_out_a_lost_mail(
    app, api, people, slot, reaper, queue
):
    provider, customer = people
    app.config["MAIL_REPUBLISH_AFTER"] = 0
    booked = api.book(customer, provider, slot(days=3, hour=10)).json
    due_at = datetime.now(UTC) + timedelta(hours=1)
    for fields in insert_reminders(app, booked["id"], customer.email, 600, due_at):
        queue.schedule("default", fields, ms(due_at))
    # A cancellation mail published after them whose entry Redis lost.
    lost = insert_reminders(app, booked["id"], provider.email, 1, None)[0]
    with app.app_context():
        db.session.execute(
            update(MailDelivery)
            .where(MailDelivery.event_id == lost["event_id"])
            .values(kind="cancellation", stream_entry_id="1-1")
        )
        db.session.commit()

    reaper.loop()

    [(_, fields)] = queue.redis.xrange(queue.stream_key("default"))
    assert fields["event_id"] == lost["event_id"]
    assert queue.redis.zcard(queue.due_key("default")) == 601  # the booking's own as well


@pytest.mark.postgres_only
@pytest.mark.timeout(180)
def test_a_thousand_reminders_due_at_once_each_go_exactly_once(
    app, api, people, slot, queue, smtp_server
):
    provider, customer = people
    booked = api.book(customer, provider, slot(days=3, hour=10)).json
    due_at = datetime.now(UTC) + timedelta(seconds=2)
    events = insert_reminders(app, booked["id"], customer.email, 1000, due_at)
    for fields in events:
        queue.schedule("default", fields, ms(due_at))  # all in the same millisecond
    stop = Stop()
    consumers = [MailWorker(app, stop=stop, name=f"worker-{n}") for n in range(2)]
    consumers += [Reaper(app, stop=stop, name=f"reaper-{n}") for n in range(2)]
    errors = []

    def run(consumer):
        consumer.initialize()
        while not stop.is_set():
            try:
                consumer.loop()
            except Exception as error:  # noqa: BLE001 - reported by the test below
                errors.append(error)
                return

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in consumers]
    for thread in threads:
        thread.start()
    try:
        wanted = {f"<{fields['event_id']}@gobarber.com>" for fields in events}
        wait_until(
            lambda: errors or wanted <= {m["Message-ID"] for m in smtp_server.messages},
            timeout=120,
            what="1,000 reminders",
        )
        wait_until(lambda: errors or owed(app) == 0, timeout=30, what="every entry acknowledged")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    received = [m["Message-ID"] for m in smtp_server.messages]
    assert len(received) == 1000
    assert set(received) == wanted
    with app.app_context():
        statuses = db.session.scalars(
            select(MailDelivery.status).where(MailDelivery.due_at == due_at)
        ).all()
    assert statuses == ["sent"] * 1000
