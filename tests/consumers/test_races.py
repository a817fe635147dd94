"""Consumers racing each other and Redis: one event handed to two workers, a group that
vanishes while a worker runs. Real Redis, PostgreSQL and SMTP; threads for the overlap."""

import logging
import threading
import time

import pytest

from consumers.loop import Stop, run
from consumers.worker import MailWorker
from gobarber.extensions import db
from gobarber.mail import outbox
from gobarber.models import MailDelivery
from gobarber.testing import wait_until
from tests.streams import owed

pytestmark = pytest.mark.sends_mail


def hold_in_data(smtp_server, seconds):
    """Make the SMTP server take `seconds` over each DATA; return an event set when a
    client reaches DATA (its send lock, if any, is taken by then)."""
    reached = threading.Event()
    original = smtp_server.mailbox.handle_DATA

    async def handle_DATA(server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        reached.set()
        return await original(server, session, envelope)

    smtp_server.mailbox.handle_DATA = handle_DATA
    smtp_server.mailbox.delay = seconds
    return reached


def test_two_consumers_handed_the_same_event_send_it_once(app, shop, smtp_server, queue):
    canceled = shop.cancellation()
    # The relay published the event a second time (its first entry looked lost), so the
    # stream holds two entries of one event, and two workers take one each.
    with app.app_context():
        delivery = db.session.scalar(
            db.select(MailDelivery).where(MailDelivery.appointment_id == canceled["id"])
        )
        outbox.publish(delivery)
    first = MailWorker(app, stop=Stop(), name="worker-a")
    second = MailWorker(app, stop=Stop(), name="worker-b")
    first.initialize()
    first.batch = 1
    in_data = hold_in_data(smtp_server, 0.5)

    sending = threading.Thread(target=first.loop)
    sending.start()
    assert in_data.wait(10), "the first worker never reached DATA"
    second.loop()  # while the first is still waiting for the SMTP server's reply
    sending.join(10)

    assert not sending.is_alive()
    assert len(smtp_server.messages) == 1
    assert shop.delivery(canceled["id"]).status == "sent"
    # The second worker put its entry aside to look again in a few seconds. Then (as if
    # those seconds had passed) the mail is recorded as sent, so the entry is
    # acknowledged without a second send.
    assert queue.redis.zcard(queue.due_key("default")) == 1
    moved, _ = queue.release_due(now_ms=int(time.time() * 1000) + 60_000)
    assert len(moved) == 1
    second.loop()
    assert len(smtp_server.messages) == 1
    assert owed(app) == 0


def test_the_loop_recreates_a_group_redis_lost_while_it_runs(
    app, shop, worker, smtp_server, redis_conn, queue, caplog
):
    caplog.set_level(logging.WARNING, logger="consumers.loop")
    initialized = []
    initialize = worker.initialize

    def counted_initialize():
        initialize()
        initialized.append(True)  # after: the group exists when the test destroys it

    worker.initialize = counted_initialize
    running = threading.Thread(target=run, args=(worker, worker.stop))
    running.start()
    try:
        wait_until(lambda: initialized, timeout=10, what="the loop to initialize the worker")
        # Redis lost the group behind the worker's back (as after a restart from an old
        # snapshot): gone from every stream at once.
        lose = redis_conn.pipeline(transaction=True)
        for key in queue.stream_keys:
            lose.xgroup_destroy(key, queue.group)
        lose.execute()
        shop.cancellation()
        wait_until(lambda: smtp_server.messages, timeout=10, what="the mail after the group loss")
    finally:
        worker.stop.set()
        running.join(10)

    assert not running.is_alive(), "the worker did not stop"
    assert len(initialized) >= 2, "the group was not created again through initialize()"
    assert "consumer group missing; creating it again" in caplog.text
    assert len(smtp_server.messages) == 1
