"""One pass of the reaper at a time: reclaiming, dead-lettering, relaying the outbox."""

import threading

from consumers.loop import Stop
from consumers.reaper import Reaper
from tests.consumers.test_worker import pending

HOUR_MS = 3_600_000


def abandon(redis_conn, keys, consumer="dead-worker", idle_ms=HOUR_MS):
    """Have a consumer take every new entry and die: they stay pending, idle for an hour."""
    reply = redis_conn.xreadgroup(keys.group, consumer, {keys.stream("default"): ">"}, count=1000)
    ids = [entry_id for _, messages in reply for entry_id, _ in messages]
    # XCLAIM's IDLE sets how long the entries look untouched, without waiting for it.
    redis_conn.xclaim(keys.stream("default"), keys.group, consumer, 0, ids, idle=idle_ms)
    return ids


def test_reclaims_what_a_dead_worker_left_and_a_worker_sends_it(
    shop, worker, reaper, smtp_server, redis_conn, keys
):
    canceled = [shop.cancellation() for _ in range(3)]
    abandon(redis_conn, keys)

    reaper.loop()

    consumers = {
        c["name"]: c["pending"]
        for c in redis_conn.xinfo_consumers(keys.stream("default"), keys.group)
    }
    assert consumers.get("dead-worker", 0) == 0
    assert redis_conn.xlen(keys.stream("default")) == 3  # requeued, old copies deleted
    requeued = [fields for _, fields in redis_conn.xrange(keys.stream("default"))]
    assert all(fields["redeliveries"] == "1" for fields in requeued)

    worker.loop()

    assert len(smtp_server.messages) == 3
    assert {shop.delivery(c["id"]).status for c in canceled} == {"sent"}
    assert pending(redis_conn, keys) == 0


def test_leaves_entries_that_are_not_idle_long_enough(shop, reaper, redis_conn, keys):
    shop.cancellation()
    abandon(redis_conn, keys, idle_ms=0)

    reaper.loop()

    assert pending(redis_conn, keys) == 1
    [consumer] = redis_conn.xinfo_consumers(keys.stream("default"), keys.group)
    assert consumer["name"] == "dead-worker"


def test_dead_letters_an_entry_that_keeps_coming_back(app, shop, reaper, redis_conn, keys):
    canceled = shop.cancellation()
    event_id = shop.delivery(canceled["id"]).event_id
    # Delivered and abandoned again and again: the entry carries its redelivery count.
    redis_conn.xtrim(keys.stream("default"), maxlen=0)
    redis_conn.xadd(
        keys.stream("default"),
        {
            "event_id": event_id,
            "kind": "cancellation",
            "redeliveries": str(app.config["MAIL_MAX_ATTEMPTS"] - 1),
        },
    )
    abandon(redis_conn, keys)

    reaper.loop()

    delivery = shop.delivery(canceled["id"])
    assert delivery.status == "failed"
    [(_, dead)] = redis_conn.xrange(keys.dead)
    assert dead["event_id"] == event_id
    assert "deliveries" in dead["error"]
    assert pending(redis_conn, keys) == 0
    assert shop.notifications()[0]["content"].startswith("Não foi possível avisar")


def test_acknowledges_a_reclaimed_entry_whose_mail_was_already_sent(
    shop, worker, reaper, smtp_server, redis_conn, keys
):
    canceled = shop.cancellation()
    worker.loop()
    event_id = shop.delivery(canceled["id"]).event_id
    redis_conn.xadd(keys.stream("default"), {"event_id": event_id, "kind": "cancellation"})
    abandon(redis_conn, keys)

    reaper.loop()

    assert pending(redis_conn, keys) == 0
    assert redis_conn.xlen(keys.stream("default")) == 0
    assert len(smtp_server.messages) == 1


def test_deleted_pending_entries_are_dropped_and_their_mail_published_again(
    shop, worker, reaper, smtp_server, redis_conn, keys
):
    canceled = shop.cancellation()
    [entry_id] = abandon(redis_conn, keys)
    redis_conn.xdel(keys.stream("default"), entry_id)  # gone from the stream, still pending

    reaper.loop()

    # Redis 7 reports the id as deleted; the still-queued row is published again.
    assert pending(redis_conn, keys) == 0
    worker.loop()
    assert len(smtp_server.messages) == 1
    assert shop.delivery(canceled["id"]).status == "sent"


def test_relays_an_outbox_row_that_never_reached_redis(
    app, database_url, tmp_path, client, shop, worker, reaper, smtp_server, redis_conn, keys
):
    from gobarber import create_app
    from tests.conftest import make_config

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
    assert redis_conn.xlen(keys.stream("default")) == 0
    assert shop.delivery(booked.json["id"]).published_at is None

    reaper.loop()

    assert redis_conn.xlen(keys.stream("default")) == 1
    assert shop.delivery(booked.json["id"]).published_at is not None
    worker.loop()
    assert len(smtp_server.messages) == 1


def test_republishes_a_row_whose_entry_redis_lost(
    app, shop, worker, reaper, smtp_server, redis_conn, keys
):
    canceled = shop.cancellation()
    app.config["MAIL_REPUBLISH_AFTER"] = 0
    redis_conn.delete(keys.stream("default"))  # Redis restarted empty: stream and group gone
    reaper.initialize()  # as the shared loop does after a NOGROUP error

    reaper.loop()

    assert redis_conn.xlen(keys.stream("default")) == 1
    worker.loop()
    assert len(smtp_server.messages) == 1
    assert shop.delivery(canceled["id"]).status == "sent"


def test_two_reapers_at_once_requeue_each_entry_once(
    app, shop, worker, smtp_server, redis_conn, keys
):
    for _ in range(20):
        shop.cancellation()
    abandon(redis_conn, keys)
    reapers = [Reaper(app, stop=Stop(), name=f"reaper-{n}") for n in range(2)]
    for reaper in reapers:
        reaper.initialize()
    start = threading.Barrier(2)

    def run(reaper):
        start.wait()
        reaper.loop()

    threads = [threading.Thread(target=run, args=(r,)) for r in reapers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert redis_conn.xlen(keys.stream("default")) == 20
    while pending(redis_conn, keys) or redis_conn.xlen(keys.stream("default")):
        worker.loop()
    assert len(smtp_server.messages) == 20
    assert len({m["Message-ID"] for m in smtp_server.messages}) == 20
