"""A worker sends over MAIL_CONCURRENCY SMTP sessions at once, with the guarantees of one:
each mail once, recorded as sent before its entry is acknowledged, retried on its own."""

import pytest
import redis
from sqlalchemy import event

from consumers.loop import Stop
from consumers.worker import MailWorker
from gobarber.extensions import db
from gobarber.mail import outbox
from gobarber.models import MailDelivery
from tests.streams import owed, pending, run_until_settled

pytestmark = pytest.mark.sends_mail


@pytest.fixture
def config_overrides():
    # A Redis that stops answering fails a command within a second.
    return {"MAIL_CONCURRENCY": 4, "REDIS_SOCKET_TIMEOUT": 1}


@pytest.fixture
def worker(app):
    worker = MailWorker(app, stop=Stop(), name="worker-concurrent")
    worker.initialize()
    yield worker
    worker.shutdown()


def statements_during(app, action):
    """Run `action` and return the SQL statements it sent."""
    statements = []
    with app.app_context():
        engine = db.engine

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return statements


def test_mails_go_over_several_sessions_at_once_each_reused(shop, worker, smtp_server, queue):
    canceled = [shop.cancellation() for _ in range(24)]
    smtp_server.mailbox.delay = 0.1  # a slow provider: one session alone takes 2.4 s

    worker.loop()

    messages = smtp_server.messages
    assert len(messages) == 24
    assert len({m["Message-ID"] for m in messages}) == 24  # each mail once
    assert smtp_server.mailbox.most_at_once == 4
    # Four connections carried the 24 mails: a session is kept from mail to mail.
    assert len(set(smtp_server.mailbox.peers)) == 4
    assert {shop.delivery(c["id"]).status for c in canceled} == {"sent"}
    assert {shop.delivery(c["id"]).attempts for c in canceled} == {1}
    assert pending(queue) == 0 and owed(shop.app) == 0


def test_a_batch_is_read_and_recorded_in_a_few_statements(app, shop, worker, smtp_server):
    for _ in range(20):
        shop.cancellation()

    statements = statements_during(app, worker.loop)

    assert len(smtp_server.messages) == 20
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    marks = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    # One query a batch reads the rows with their appointments and people (the test
    # config reads 10 at a time); the sent marks go several to an UPDATE.
    assert len(reads) <= 3, reads
    assert 1 <= len(marks) < 20, marks


def test_a_dropped_connection_fails_only_its_own_mail(shop, worker, smtp_server, api, queue):
    other = api.provider("Barbeira Lia")
    dropped = shop.cancellation(other)
    fine = [shop.cancellation() for _ in range(8)]
    smtp_server.mailbox.hang_up_on.add(other.email)

    worker.loop()

    # The other sessions went on: every other mail went in the same pass.
    assert {shop.delivery(c["id"]).status for c in fine} == {"sent"}
    assert len(smtp_server.messages) == 8
    failed = shop.delivery(dropped["id"])
    assert failed.status == "queued" and failed.attempts == 1
    assert failed.last_error  # waiting for its retry
    smtp_server.mailbox.hang_up_on.clear()
    run_until_settled(
        worker, lambda: shop.delivery(dropped["id"]).status == "sent", what="the retried mail"
    )
    assert len(smtp_server.messages) == 9
    assert pending(queue) == 0


def test_a_refused_mail_is_dead_lettered_while_the_others_go(
    shop, worker, smtp_server, api, redis_conn, queue
):
    other = api.provider("Barbeiro Rui")
    refused = shop.cancellation(other)
    fine = [shop.cancellation() for _ in range(6)]
    smtp_server.refuse(other.email)

    worker.loop()

    assert {shop.delivery(c["id"]).status for c in fine} == {"sent"}
    assert shop.delivery(refused["id"]).status == "failed"
    [(_, dead)] = redis_conn.xrange(queue.dead_key)
    assert dead["event_id"] == shop.delivery(refused["id"]).event_id
    assert pending(queue) == 0


def test_two_entries_of_one_event_in_one_batch_send_it_once(app, shop, worker, smtp_server):
    canceled = shop.cancellation()
    # The relay published the event a second time (its first entry looked lost): both
    # entries come to this worker, which holds the event's send lock for either.
    with app.app_context():
        outbox.publish(db.session.get(MailDelivery, shop.delivery(canceled["id"]).id))
    smtp_server.mailbox.delay = 0.2  # the first is still being sent when the second is seen

    worker.loop()

    assert len(smtp_server.messages) == 1
    assert shop.delivery(canceled["id"]).status == "sent"
    # The second entry waits to be looked at again; then the row says sent: no second mail.
    run_until_settled(worker, lambda: owed(app) == 0, what="the second entry settled")
    assert len(smtp_server.messages) == 1


def test_redis_failing_mid_pass_records_what_the_server_accepted(
    app, shop, worker, smtp_server, redis_conn, queue
):
    canceled = [shop.cancellation() for _ in range(8)]
    smtp_server.mailbox.delay = 0.3
    paused = []

    def pause_writes_once(_message):
        # The first mail is accepted: Redis stops taking writes for 1.5 s, so settling
        # it times out while three more mails are still in flight.
        if not paused:
            paused.append(True)
            redis_conn.execute_command("CLIENT", "PAUSE", 1500, "WRITE")

    smtp_server.mailbox.on_message = pause_writes_once

    with pytest.raises(redis.RedisError):
        worker.loop()

    # Every mail the server accepted (the sessions went on while Redis hung) is recorded
    # as sent, though Redis heard of none of them.
    accepted = {m["Message-ID"] for m in smtp_server.messages}
    rows = [shop.delivery(c["id"]) for c in canceled]
    assert {f"<{r.event_id}@gobarber.com>" for r in rows if r.status == "sent"} == accepted
    assert accepted and pending(queue) == 8

    # Redis back: the worker re-reads what it holds, acknowledges the sent ones unsent
    # and sends the rest, each mail once.
    smtp_server.mailbox.on_message = None
    smtp_server.mailbox.delay = 0
    worker.initialize()
    run_until_settled(worker, lambda: owed(app) == 0, what="every entry settled")
    ids = [m["Message-ID"] for m in smtp_server.messages]
    assert len(ids) == 8 and len(set(ids)) == 8
    assert {shop.delivery(c["id"]).status for c in canceled} == {"sent"}
