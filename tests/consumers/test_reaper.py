"""One pass of the reaper at a time: reclaiming, dead-lettering, relaying the outbox."""

import threading

import pytest

from consumers.loop import Stop
from consumers.reaper import Reaper
from tests.apps import make_config
from tests.streams import abandon, abandon_on_its_last_delivery, pending, run_until_settled

pytestmark = pytest.mark.sends_mail


def test_reclaims_what_a_dead_worker_left_and_a_worker_sends_it(
    shop, worker, reaper, smtp_server, redis_conn, queue
):
    canceled = [shop.cancellation() for _ in range(3)]
    abandon(queue)

    reaper.loop()

    consumers = {
        c["name"]: c["pending"]
        for c in redis_conn.xinfo_consumers(queue.stream_key("default"), queue.group)
    }
    assert consumers.get("dead-worker", 0) == 0
    assert redis_conn.xlen(queue.stream_key("default")) == 3  # requeued, old copies deleted
    requeued = [fields for _, fields in redis_conn.xrange(queue.stream_key("default"))]
    assert all(fields["redeliveries"] == "1" for fields in requeued)

    worker.loop()

    assert len(smtp_server.messages) == 3
    assert {shop.delivery(c["id"]).status for c in canceled} == {"sent"}
    assert pending(queue) == 0


def test_leaves_entries_that_are_not_idle_long_enough(shop, reaper, redis_conn, queue):
    shop.cancellation()
    abandon(queue, idle_ms=0)

    reaper.loop()

    assert pending(queue) == 1
    [consumer] = redis_conn.xinfo_consumers(queue.stream_key("default"), queue.group)
    assert consumer["name"] == "dead-worker"


def test_dead_letters_an_entry_that_keeps_coming_back(app, shop, reaper, redis_conn, queue):
    canceled = shop.cancellation()
    event_id = shop.delivery(canceled["id"]).event_id
    # Delivered and abandoned again and again: the entry carries its redelivery count.
    abandon_on_its_last_delivery(queue, event_id, app.config["MAIL_MAX_ATTEMPTS"])

    reaper.loop()

    delivery = shop.delivery(canceled["id"])
    assert delivery.status == "failed"
    [(_, dead)] = redis_conn.xrange(queue.dead_key)
    assert dead["event_id"] == event_id
    assert "deliveries" in dead["error"]
    assert pending(queue) == 0
    assert shop.notifications()[0]["content"].startswith("Não foi possível avisar")


def test_acknowledges_a_reclaimed_entry_whose_mail_was_already_sent(
    shop, worker, reaper, smtp_server, redis_conn, queue
):
    canceled = shop.cancellation()
    worker.loop()
    event_id = shop.delivery(canceled["id"]).event_id
    redis_conn.xadd(queue.stream_key("default"), {"event_id": event_id, "kind": "cancellation"})
    abandon(queue)

    reaper.loop()

    assert pending(queue) == 0
    assert redis_conn.xlen(queue.stream_key("default")) == 0
    assert len(smtp_server.messages) == 1


def test_deleted_pending_entries_are_dropped_and_their_mail_published_again(
    shop, worker, reaper, smtp_server, redis_conn, queue
):
    canceled = shop.cancellation()
    [entry_id] = abandon(queue)
    redis_conn.xdel(queue.stream_key("default"), entry_id)  # gone from the stream, still pending

    reaper.loop()

    # Redis 7 reports the id as deleted; the still-queued row is published again.
    assert pending(queue) == 0
    worker.loop()
    assert len(smtp_server.messages) == 1
    assert shop.delivery(canceled["id"]).status == "sent"


def test_relays_an_outbox_row_that_never_reached_redis(
    app, database_url, tmp_path, client, shop, worker, reaper, smtp_server, redis_conn, queue
):
    from gobarber import create_app

    # The web app's Redis is unreachable: the cancel still commits and answers 200.
    offline = create_app(
        make_config(
            database_url,
            tmp_path,
            REDIS_URL="redis://127.0.0.1:1/0",
            MAIL_STREAM_PREFIX=app.config["MAIL_STREAM_PREFIX"],
        )
    )
    provider, customer = shop.provider, shop.customer
    booked = shop.api.book(customer, provider, shop.slot(days=3, hour=9))
    canceled = offline.test_client().delete(
        f"/appointments/{booked.json['id']}", headers=customer.headers
    )
    assert canceled.status_code == 200
    assert canceled.json["cancellation_mail"]["status"] == "queued"
    assert redis_conn.xlen(queue.stream_key("default")) == 0
    assert shop.delivery(booked.json["id"]).published_at is None

    reaper.loop()

    assert redis_conn.xlen(queue.stream_key("default")) == 1
    assert shop.delivery(booked.json["id"]).published_at is not None
    worker.loop()
    assert len(smtp_server.messages) == 1


def test_republishes_a_row_whose_entry_redis_lost(
    app, shop, worker, reaper, smtp_server, redis_conn, queue
):
    canceled = shop.cancellation()
    app.config["MAIL_REPUBLISH_AFTER"] = 0
    redis_conn.delete(queue.stream_key("default"))  # Redis restarted empty: stream and group gone
    reaper.initialize()  # as the shared loop does after a NOGROUP error

    reaper.loop()

    assert redis_conn.xlen(queue.stream_key("default")) == 1
    worker.loop()
    assert len(smtp_server.messages) == 1
    assert shop.delivery(canceled["id"]).status == "sent"


def test_two_reapers_at_once_requeue_each_entry_once(
    app, shop, worker, smtp_server, redis_conn, queue
):
    for _ in range(20):
        shop.cancellation()
    abandon(queue)
    reapers = [Reaper(app, stop=Stop(), name=f"reaper-{n}") for n in range(2)]
    for reaper in reapers:
        reaper.initialize()
    start = threading.Barrier(2)

    def run(reaper):
        start.wait(timeout=30)
        reaper.loop()

    threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in reapers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), f"{thread.name}'s reaper pass did not end within 30s"

    assert redis_conn.xlen(queue.stream_key("default")) == 20
    run_until_settled(
        worker,
        lambda: not (pending(queue) or redis_conn.xlen(queue.stream_key("default"))),
        what="the 20 requeued entries to be sent and acknowledged",
    )
    assert len(smtp_server.messages) == 20
    assert len({m["Message-ID"] for m in smtp_server.messages}) == 20
