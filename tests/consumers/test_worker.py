"""One pass of the mail worker at a time, against real Redis, PostgreSQL and SMTP."""

from dataclasses import replace

import pytest

from consumers.loop import Stop
from consumers.worker import MailWorker
from gobarber.extensions import db
from gobarber.mail import outbox
from gobarber.models import MailDelivery
from tests.streams import owed, pending, run_until_settled

pytestmark = pytest.mark.sends_mail


def test_sends_the_cancellation_mail_then_acknowledges(
    shop, worker, smtp_server, redis_conn, queue
):
    canceled = shop.cancellation()
    assert canceled["cancellation_mail"]["status"] == "queued"

    worker.loop()

    [message] = smtp_server.messages
    delivery = shop.delivery(canceled["id"])
    assert message["To"] == f"Barbeiro Zé <{shop.provider.email}>"
    assert message["From"] == "Equipe GoBarber <noreply@gobarber.com>"
    assert message["Subject"] == "Agendamento cancelado"
    assert message["Message-ID"] == f"<{delivery.event_id}@gobarber.com>"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for part in (text, html):
        assert "Olá, " in part and "Barbeiro Zé" in part
        assert "Houve um cancelamento de horário, confira os detalhes abaixo:" in part
        assert "Cliente Ana" in part
        assert "O horário está novamente disponível para novos agendamentos." in part
        assert "Equipe GoBarber" in part
    assert delivery.status == "sent" and delivery.attempts == 1
    assert shop.mail_status(canceled["id"])["status"] == "sent"
    assert pending(queue) == 0
    assert redis_conn.xlen(queue.stream_key("default")) == 0  # acknowledged entries do not pile up


def test_redelivered_event_already_sent_is_acknowledged_without_a_second_mail(
    shop, worker, smtp_server, redis_conn, queue
):
    canceled = shop.cancellation()
    worker.loop()
    assert len(smtp_server.messages) == 1
    # The same event arrives again, as after a worker died between the record and XACK.
    event_id = shop.delivery(canceled["id"]).event_id
    redis_conn.xadd(queue.stream_key("default"), {"event_id": event_id, "kind": "cancellation"})

    worker.loop()

    assert len(smtp_server.messages) == 1
    assert pending(queue) == 0
    assert redis_conn.xlen(queue.stream_key("default")) == 0


def test_transient_failure_is_retried_then_sent(shop, worker, smtp_server, redis_conn, queue):
    smtp_server.fail_next(1)
    canceled = shop.cancellation()

    worker.loop()

    delivery = shop.delivery(canceled["id"])
    assert smtp_server.messages == []
    assert delivery.status == "queued" and delivery.attempts == 1
    assert delivery.last_error.startswith("451")
    # Waiting for its retry outside the stream and the pending list, so no visibility
    # timeout bounds how long it may wait.
    assert pending(queue) == 0
    assert redis_conn.xlen(queue.stream_key("default")) == 0
    assert redis_conn.zcard(queue.due_key("default")) == 1
    assert shop.mail_status(canceled["id"])["last_error"].startswith("451")

    run_until_settled(worker, lambda: smtp_server.messages, what="the retried mail")

    delivery = shop.delivery(canceled["id"])
    assert delivery.status == "sent" and delivery.attempts == 2
    assert len(smtp_server.messages) == 1
    assert pending(queue) == 0
    assert redis_conn.zcard(queue.due_key("default")) == 0
    assert (
        shop.delivery(canceled["id"]).stream_entry_id
        == redis_conn.xinfo_stream(queue.stream_key("default"))["last-generated-id"]
    )  # the row knows where its retry was put


def test_refused_connection_is_transient(shop, worker, smtp_server):
    smtp_server.stop()
    canceled = shop.cancellation()

    worker.loop()

    delivery = shop.delivery(canceled["id"])
    assert delivery.status == "queued" and delivery.attempts == 1
    assert "Connection" in delivery.last_error or "refused" in delivery.last_error.lower()
    smtp_server.start()  # back on the same port: the retry delivers
    run_until_settled(worker, lambda: smtp_server.messages, what="the mail once SMTP is back")
    assert shop.delivery(canceled["id"]).status == "sent"


def test_permanent_refusal_is_dead_lettered_and_the_customer_told(
    shop, worker, smtp_server, redis_conn, queue
):
    smtp_server.refuse(shop.provider.email)
    canceled = shop.cancellation()

    worker.loop()

    delivery = shop.delivery(canceled["id"])
    assert smtp_server.messages == []
    assert delivery.status == "failed" and delivery.attempts == 1
    assert delivery.last_error.startswith("550")
    [(_, dead)] = redis_conn.xrange(queue.dead_key)
    assert dead["event_id"] == delivery.event_id
    assert dead["error"].startswith("550")
    assert pending(queue) == 0
    assert shop.mail_status(canceled["id"])["status"] == "failed"
    [notice] = shop.notifications()
    assert notice["content"].startswith("Não foi possível avisar Barbeiro Zé do cancelamento")


def test_a_dead_cancellation_mail_tells_the_provider_in_the_app(shop, worker, smtp_server):
    # Their mailbox refused the mail: the shop learns of the cancel from its notifications
    # (which its dashboard shows), and that the hour is free again.
    smtp_server.refuse(shop.provider.email)
    shop.cancellation()

    worker.loop()

    notices = [n["content"] for n in shop.notifications(shop.provider)]
    assert any(
        text.startswith(f"{shop.customer.name} cancelou o agendamento de")
        and "não pôde ser entregue" in text
        for text in notices
    ), notices


def test_gives_up_after_max_attempts(app, shop, worker, smtp_server, redis_conn, queue):
    app.config["MAIL_MAX_ATTEMPTS"] = 3
    worker.deliverer.policy = replace(worker.deliverer.policy, max_attempts=3)
    smtp_server.fail_next(100)
    canceled = shop.cancellation()

    run_until_settled(
        worker,
        lambda: shop.delivery(canceled["id"]).status == "failed",
        what="the delivery to fail after 3 attempts",
    )

    delivery = shop.delivery(canceled["id"])
    assert delivery.attempts == 3
    assert delivery.last_error.startswith("451")
    assert len(redis_conn.xrange(queue.dead_key)) == 1
    assert pending(queue) == 0
    assert len(shop.notifications()) == 1


def test_poison_entry_is_dead_lettered_and_does_not_block_the_others(
    shop, worker, smtp_server, redis_conn, queue
):
    redis_conn.xadd(queue.stream_key("default"), {"garbage": "\x00not an event"})
    redis_conn.xadd(queue.stream_key("default"), {"event_id": "not-a-uuid", "kind": "cancellation"})
    canceled = shop.cancellation()

    worker.loop()

    assert len(smtp_server.messages) == 1
    assert shop.delivery(canceled["id"]).status == "sent"
    dead = [fields for _, fields in redis_conn.xrange(queue.dead_key)]
    assert len(dead) == 2
    assert all(entry["error"].startswith("unreadable entry") for entry in dead)
    assert pending(queue) == 0


def test_event_without_a_delivery_row_is_dead_lettered(worker, smtp_server, redis_conn, queue):
    event_id = "6f1c2d7e-8a8b-4c1e-9a47-0f4b1d5e2c3a"
    redis_conn.xadd(queue.stream_key("default"), {"event_id": event_id, "kind": "cancellation"})

    worker.loop()

    [(_, dead)] = redis_conn.xrange(queue.dead_key)
    assert dead["event_id"] == event_id
    assert dead["error"] == "no delivery recorded for this event"
    assert smtp_server.messages == []


def test_high_priority_is_sent_before_a_default_backlog(
    app, shop, worker, smtp_server, redis_conn, queue
):
    backlog = [shop.cancellation() for _ in range(12)]
    # An urgent mail arrives after the backlog; it is sent in the very next batch.
    with app.app_context():
        delivery = db.session.get(MailDelivery, shop.delivery(backlog[0]["id"]).id)
        urgent = MailDelivery(
            event_id="0b7a3f1e-2c4d-4e5f-8a9b-1c2d3e4f5a6b",
            kind="cancellation",
            priority="high",
            appointment_id=delivery.appointment_id,
            recipient="urgent@barber.example.com",
            status="queued",
        )
        db.session.add(urgent)
        db.session.commit()
        from gobarber.mail import outbox

        outbox.publish(urgent)

    worker.loop()

    # The high entry was read alone, ahead of the twelve default ones, and sent first;
    # the backlog followed while it was being sent.
    first = smtp_server.messages[0]
    assert first["To"].addresses[0].addr_spec == "urgent@barber.example.com"
    assert len(smtp_server.messages) == 13
    assert redis_conn.xlen(queue.stream_key("default")) == 0


def test_high_priority_arriving_mid_batch_is_sent_before_the_batch_ends(
    app, shop, smtp_server, queue
):
    # One session, so the backlog goes one mail at a time and the urgent mail can only
    # get ahead of the rest by being taken in mid-batch.
    app.config["MAIL_CONCURRENCY"] = 1
    worker = MailWorker(app, stop=Stop(), name="worker-one-session")
    worker.initialize()
    backlog = [shop.cancellation() for _ in range(12)]
    with app.app_context():
        appointment_id = shop.delivery(backlog[0]["id"]).appointment_id
        urgent = MailDelivery(
            event_id="5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
            kind="cancellation",
            priority="high",
            appointment_id=appointment_id,
            recipient="urgent@barber.example.com",
            status="queued",
        )
        db.session.add(urgent)
        db.session.commit()
        fields = outbox.entry_fields(urgent)
    smtp_server.mailbox.delay = 0.15  # a slow SMTP server: the batch takes about 2 s

    def publish_urgent_once(message):
        # While the worker is in the default batch, a high-priority mail is queued.
        if len(smtp_server.messages) == 2:
            queue.publish("high", fields)

    smtp_server.mailbox.on_message = publish_urgent_once

    worker.loop()  # one batch of default entries, all read before the urgent one existed

    recipients = [m["To"].addresses[0].addr_spec for m in smtp_server.messages]
    # Sent within URGENT_CHECK_S and one send of its arrival, not after the batch.
    assert "urgent@barber.example.com" in recipients[:6], recipients
    assert recipients[-1] != "urgent@barber.example.com"
    run_until_settled(worker, lambda: len(smtp_server.messages) == 13, what="13 mails")
    assert owed(app) == 0


def test_stop_finishes_the_sends_in_flight_and_leaves_the_rest_pending(
    app, shop, smtp_server, redis_conn, queue
):
    app.config["MAIL_CONCURRENCY"] = 2
    worker = MailWorker(app, stop=Stop(), name="worker-stopping")
    worker.initialize()
    canceled = [shop.cancellation() for _ in range(6)]
    smtp_server.mailbox.delay = 0.2  # both sessions are mid-send when the signal comes
    # SIGTERM arrives while the first mail is being accepted.
    smtp_server.mailbox.on_message = lambda _message: worker.stop.set()

    worker.loop()

    # The two mails in flight were accepted and recorded; none was started after the
    # signal, and the other four are still owed, for this name on restart or the reaper.
    assert len(smtp_server.messages) == 2
    statuses = sorted(shop.delivery(c["id"]).status for c in canceled)
    assert statuses == ["queued"] * 4 + ["sent"] * 2
    assert pending(queue) == 4
    assert not redis_conn.keys(queue.lock_key("*"))  # their send locks released

    smtp_server.mailbox.on_message = None
    again = MailWorker(app, stop=Stop(), name="worker-stopping")
    again.initialize()
    again.loop()
    ids = [m["Message-ID"] for m in smtp_server.messages]
    assert len(ids) == 6 and len(set(ids)) == 6  # each mail once
    assert pending(queue) == 0


def test_restarted_worker_first_reads_its_own_pending_entries(
    app, shop, smtp_server, redis_conn, queue
):
    from consumers.loop import Stop
    from consumers.worker import MailWorker

    shop.cancellation()
    first = MailWorker(app, stop=Stop(), name="stable-name")
    first.initialize()
    # It took the entry and died before handling it.
    redis_conn.xreadgroup(queue.group, "stable-name", {queue.stream_key("default"): ">"}, count=10)
    assert pending(queue) == 1

    again = MailWorker(app, stop=Stop(), name="stable-name")
    again.initialize()
    again.loop()

    assert len(smtp_server.messages) == 1
    assert pending(queue) == 0


def test_the_loop_recreates_a_group_redis_lost(shop, worker, smtp_server, redis_conn, queue):
    from consumers.loop import run

    redis_conn.delete(queue.stream_key("default"))  # Redis restarted empty
    shop.cancellation()
    passes = []

    def one_more_pass():
        passes.append(1)
        if len(passes) == 2 or smtp_server.messages:
            worker.stop.set()
        return original()

    original, worker.loop = worker.loop, one_more_pass
    run(worker, worker.stop)

    assert len(smtp_server.messages) == 1


def test_a_mail_that_cannot_be_rendered_is_retried_then_dead_lettered(
    app, shop, worker, smtp_server, redis_conn, queue, tmp_path
):
    from jinja2 import ChoiceLoader, FileSystemLoader

    # A broken template deployed by mistake: rendering raises for every mail.
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "cancellation.txt").write_text("{{ provider.missing.attribute }}")
    app.jinja_env.loader = ChoiceLoader([FileSystemLoader(tmp_path), app.jinja_env.loader])
    canceled = shop.cancellation()

    run_until_settled(
        worker,
        lambda: shop.delivery(canceled["id"]).status == "failed",
        what="the unrenderable mail's delivery to fail",
    )

    delivery = shop.delivery(canceled["id"])
    assert delivery.attempts == app.config["MAIL_MAX_ATTEMPTS"]
    assert "UndefinedError" in delivery.last_error
    assert smtp_server.messages == []
    assert pending(queue) == 0
    assert len(redis_conn.xrange(queue.dead_key)) == 1
