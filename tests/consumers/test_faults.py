"""What production does to the pipeline, one pass at a time: poison entries, a bounded
dead-letter stream, retries that outlive the visibility timeout, a retry an operator
delivers. Real Redis, PostgreSQL and SMTP."""

import pytest
import redis

from gobarber.extensions import db, mail_queue
from gobarber.mail import operations
from gobarber.models import User
from tests.forms import admin_sign_in
from tests.streams import abandon, pending, run_until_settled

pytestmark = pytest.mark.sends_mail

NOT_UTF8 = b"\xff\xfe\xfd"


@pytest.fixture
def raw_redis(app):
    """A client that writes bytes as they are, as any other producer might."""
    client = redis.Redis.from_url(app.config["REDIS_URL"])
    yield client
    client.close()


def test_entries_that_are_not_utf8_are_dead_lettered_and_the_line_goes_on(
    app, shop, worker, reaper, smtp_server, raw_redis, queue
):
    for priority in ("high", "default"):
        raw_redis.xadd(queue.stream_key(priority), {b"event_id": NOT_UTF8, b"kind": NOT_UTF8})
        raw_redis.xadd(queue.stream_key(priority), {NOT_UTF8: b"x"})
    canceled = [shop.cancellation() for _ in range(3)]

    run_until_settled(worker, lambda: len(smtp_server.messages) == 3, what="the three mails")

    assert {shop.delivery(c["id"]).status for c in canceled} == {"sent"}
    dead = queue.dead_letters()
    assert len(dead) == 4
    assert all(fields["error"].startswith("unreadable entry") for _, fields in dead)
    assert pending(queue, "high") == pending(queue) == 0
    # Every operator view reads the dead letters and the streams without failing.
    with app.app_context():
        assert operations.status(mail_queue.get())["dead_letters"] == 4
        assert len(operations.dead_letters(mail_queue.get())) == 4
        db.session.get(User, shop.customer.id).admin = True
        db.session.commit()
    assert shop.client.get("/metrics").status_code == 200
    admin_sign_in(shop.client, shop.customer.email, shop.customer.password)
    page = shop.client.get("/admin/queue")
    assert page.status_code == 200
    assert page.get_data(as_text=True).count("unreadable entry") == 4


def test_the_reaper_survives_poison_left_pending_by_a_dead_consumer(
    app, shop, reaper, worker, smtp_server, raw_redis, queue
):
    canceled = shop.cancellation()
    event_id = shop.delivery(canceled["id"]).event_id
    raw_redis.xtrim(queue.stream_key("default"), maxlen=0)
    stream = queue.stream_key("default")
    raw_redis.xadd(stream, {b"event_id": NOT_UTF8})
    raw_redis.xadd(stream, {b"event_id": event_id.encode(), b"redeliveries": b"many"})
    gone = raw_redis.xadd(stream, {b"event_id": b"6f1c2d7e-8a8b-4c1e-9a47-0f4b1d5e2c3a"})
    abandon(queue)
    raw_redis.xdel(stream, gone)  # pending for the dead consumer, its body gone

    reaper.loop()

    [(_, dead)] = queue.dead_letters()
    assert dead["error"].startswith("unreadable entry")
    # The real cancellation went back for another try, counted as its second delivery.
    [(_, requeued)] = queue.redis.xrange(stream)
    assert (requeued["event_id"], requeued["redeliveries"]) == (event_id, "1")
    run_until_settled(worker, lambda: smtp_server.messages, what="the requeued mail")
    assert shop.delivery(canceled["id"]).status == "sent"


def test_dead_letters_are_truncated_and_the_stream_is_capped(app, worker, raw_redis, queue):
    capped = mail_queue.get(app)
    capped.dead_max = 10
    huge = b"x" * 1_000_000
    stream = queue.stream_key("default")
    for start in range(0, 600, 100):
        pipe = raw_redis.pipeline(transaction=False)
        for number in range(start, start + 100):
            pipe.xadd(stream, {b"event_id": b"poison-%d" % number, b"blob": huge[: number * 10]})
        pipe.execute()
    raw_redis.xadd(stream, {b"event_id": b"poison-huge", b"blob": huge})

    run_until_settled(
        worker, lambda: raw_redis.xlen(stream) == 0, what="every poison entry dead", timeout=30
    )

    # MAXLEN ~ trims whole nodes of the stream (100 entries each), never below the cap.
    assert 10 <= queue.redis.xlen(queue.dead_key) <= 10 + 100
    newest = queue.dead_letters(1)[0][1]
    assert newest["event_id"] == "poison-huge"
    assert len(newest["blob"]) == 1024
    assert sum(len(value) for value in newest.values()) < 4096


def test_a_retry_waits_outside_the_pending_list_longer_than_the_visibility_timeout(
    app, shop, worker, reaper, smtp_server, queue
):
    app.config["MAIL_VISIBILITY_TIMEOUT"] = 1
    reaper.visibility_ms = 1000
    smtp_server.fail_next(1)
    canceled = shop.cancellation()
    worker.deliverer.policy = type(worker.deliverer.policy)(
        max_attempts=5, retry_base=3600, retry_max=3600
    )

    worker.loop()  # 451: the next try is due in about an hour

    waiting = queue.redis.zrange(queue.due_key("default"), 0, -1, withscores=True)
    assert [event for event, _ in waiting] == [shop.delivery(canceled["id"]).event_id]
    assert pending(queue) == 0
    scraped = shop.client.get("/metrics").get_data(as_text=True)
    assert 'gobarber_mail_retries_waiting{priority="default"} 1.0' in scraped
    reaper.loop()  # nothing for the reaper to take, nothing for the relay to publish
    assert queue.redis.xlen(queue.stream_key("default")) == 0
    # An hour later: due, back on the stream, sent.
    moved, wait_s = queue.release_due(now_ms=int(waiting[0][1]) + 1)
    assert len(moved) == 1 and wait_s is None
    run_until_settled(worker, lambda: smtp_server.messages, what="the mail an hour later")
    assert shop.delivery(canceled["id"]).status == "sent"


def test_a_dead_mail_an_operator_puts_back_tells_the_customer_when_it_goes(
    app, shop, worker, smtp_server, queue
):
    smtp_server.refuse(shop.provider.email)
    canceled = shop.cancellation()
    worker.loop()
    [failed_notice] = shop.notifications()
    assert failed_notice["content"].startswith("Não foi possível avisar Barbeiro Zé")

    smtp_server.mailbox.refuse_recipients.clear()
    with app.app_context():
        operations.retry(mail_queue.get(), event_id=shop.delivery(canceled["id"]).event_id)
    run_until_settled(worker, lambda: smtp_server.messages, what="the mail put back")

    delivered_notice, _ = shop.notifications()
    assert delivered_notice["content"].startswith("Barbeiro Zé foi avisado do cancelamento")
    mail = shop.mail_status(canceled["id"])
    assert mail["status"] == "sent" and mail["failed_at"] is not None
