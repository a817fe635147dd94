"""The mail streams split into shards (`MAIL_STREAM_SHARDS`), on one Redis here; the
cluster suites (tests/e2e/test_cluster.py) spread the same shards over masters."""

import json
import uuid
from collections import Counter

import pytest
import redis
from sqlalchemy import select

from consumers.loop import Stop
from consumers.worker import MailWorker
from gobarber import create_app
from gobarber.extensions import db, mail_queue
from gobarber.mail import outbox
from gobarber.mail.queue import Entry, MailQueue, shard_for
from gobarber.models import MailDelivery
from tests.apps import make_config
from tests.scrape import metric_values
from tests.streams import deliveries, insert_deliveries, run_until_settled

pytestmark = pytest.mark.sends_mail

SHARDS = 4


@pytest.fixture
def config_overrides():
    return {"MAIL_STREAM_SHARDS": SHARDS}


def fields(event_id=None):
    event_id = event_id or str(uuid.uuid4())
    return {"event_id": event_id, "kind": "cancellation", "appointment_id": "1", "created_at": "1"}


def test_one_shard_keeps_the_keys_of_the_unsharded_queue(redis_conn):
    one = MailQueue(redis_conn, prefix="p", group="g")
    four = MailQueue(redis_conn, prefix="p", group="g", shards=4)
    event = "8d3c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a0f"
    for queue in (one, four):
        assert queue.stream_key("high") == "{p}:mail:high"
        assert queue.stream_key("default") == "{p}:mail:default"
        assert queue.dead_key == "{p}:mail:dead"
        assert queue.due_key("default") == "{p}:mail:default:due"
        assert queue.lock_key(event) == "{p}:mail:sending:" + event
        assert queue.delayed_key(event) == "{p}:mail:delayed:" + event
    assert one.stream_keys == ["{p}:mail:high", "{p}:mail:default"]
    assert four.stream_key("default", 2) == "{p:2}:mail:default"
    assert four.dead_key_of(3) == "{p:3}:mail:dead"
    assert one.shard_for(event) == 0
    assert four.shard_for(event) == shard_for(event, 4) == shard_for(event, 4)


def test_events_spread_over_the_shards_and_rows_record_theirs(app, shop, queue):
    canceled = [shop.cancellation() for _ in range(40)]

    rows = {row.appointment_id: row for row in deliveries(app)}
    shards = Counter(rows[c["id"]].shard for c in canceled)
    assert set(shards) == set(range(SHARDS)), shards
    for row in rows.values():
        assert row.shard == shard_for(row.event_id, SHARDS)
        stream = queue.stream_key("default", row.shard)
        [(_, on_stream)] = queue.redis.xrange(stream, row.stream_entry_id, row.stream_entry_id)
        assert on_stream["event_id"] == row.event_id


def test_a_worker_sends_from_every_shard_once(app, shop, worker, smtp_server):
    canceled = [shop.cancellation() for _ in range(30)]

    run_until_settled(
        worker,
        lambda: len(smtp_server.messages) >= len(canceled),
        what="every shard's mail sent",
    )
    assert {row.status for row in deliveries(app)} == {"sent"}
    ids = Counter(message["Message-ID"] for message in smtp_server.messages)
    assert len(ids) == 30 and set(ids.values()) == {1}


def test_a_full_shard_does_not_starve_the_others(queue):
    queue.ensure_group()
    pipe = queue.redis.pipeline(transaction=False)
    for _ in range(300):
        pipe.xadd(queue.stream_key("default", 0), fields())
    pipe.execute()
    lonely = queue.publish("default", fields(), shard=3)

    seen = []
    for _ in range(SHARDS):
        seen += queue.read_new("w", count=50, block_ms=10)
    assert lonely in [entry.entry_id for entry in seen if queue.shard_of(entry) == 3]


def test_priority_holds_within_a_shard(queue):
    queue.ensure_group()
    for _ in range(5):
        queue.publish("default", fields(), shard=1)
    urgent = queue.publish("high", fields(), shard=1)

    entries = []
    while not entries:
        entries = queue.read_new("w", count=3, block_ms=10)
    assert entries[0].entry_id == urgent
    assert [queue.shard_of(entry) for entry in entries] == [1]


def test_mail_shards_names_the_shards_a_worker_reads(app, redis_conn):
    queue = MailQueue(redis_conn, prefix=app.config["MAIL_STREAM_PREFIX"], group="g", shards=4)
    mine = MailQueue(
        redis_conn, prefix=app.config["MAIL_STREAM_PREFIX"], group="g", shards=4, reading=(1, 2)
    )
    mine.ensure_group()
    assert mine.stream_keys == [
        key
        for shard in (1, 2)
        for key in (queue.stream_key("high", shard), queue.stream_key("default", shard))
    ]
    assert not redis_conn.exists(queue.stream_key("default", 0))
    for shard in range(4):
        queue.publish("default", fields(), shard=shard)

    read = []
    for _ in range(4):
        read += mine.read_new("w", count=10, block_ms=10)
    assert sorted(mine.shard_of(entry) for entry in read) == [1, 2]


def test_growing_the_shards_loses_nothing(app, shop, smtp_server, database_url, tmp_path):
    """Events published while there was one shard sit on shard 0, which workers that read
    more shards still read: workers first, then the web, and nothing is lost."""
    settings = {
        key: app.config[key]
        for key in ("MAIL_STREAM_PREFIX", "MAIL_SERVER", "MAIL_PORT", "MAIL_REMINDER_BEFORE")
    }
    one = create_app(make_config(database_url, tmp_path, **settings, MAIL_STREAM_SHARDS=1))
    canceled = shop.cancellation()  # through this module's four shards
    insert_deliveries(
        app,
        6,
        kind="cancellation",
        appointment_id=canceled["id"],
        recipient=shop.provider.email,
        published_at=None,
    )
    with one.app_context():
        unpublished = select(MailDelivery).where(MailDelivery.published_at.is_(None))
        for row in db.session.scalars(unpublished).all():
            assert row.shard == 0
            outbox.publish(row, mail_queue.get(one))
    assert mail_queue.get(one).redis.xlen(mail_queue.get(one).stream_key("default")) >= 6

    grown = create_app(make_config(database_url, tmp_path, **settings, MAIL_STREAM_SHARDS=8))
    worker = MailWorker(grown, stop=Stop(), name="grown")
    worker.initialize()
    run_until_settled(worker, lambda: len(smtp_server.messages) >= 7, what="all 7 mails")
    assert {row.status for row in deliveries(app)} == {"sent"}
    assert len(smtp_server.messages) == 7


def test_the_relay_puts_a_lost_event_back_on_its_own_shard(app, shop, queue):
    canceled = shop.cancellation()
    row = shop.delivery(canceled["id"])
    stream = queue.stream_key("default", row.shard)
    queue.redis.delete(stream)  # Redis lost it (restarted empty)

    with app.app_context():
        relayed = outbox.relay(unpublished_after=0, republish_after=-1)
        assert relayed == 1
    assert queue.redis.xlen(stream) == 1
    [(_, on_stream)] = queue.redis.xrange(stream)
    assert on_stream["event_id"] == row.event_id


def test_operator_views_sum_the_shards_and_show_one(app, queue, flask_cli):
    queue.ensure_group()
    for shard in (0, 2, 2):
        queue.publish("default", fields(), shard=shard)
    # Entry ids are per stream: shards 0 and 1 may both have an entry of the same id.
    dead = [(shard, queue.publish("default", fields(), shard=shard)) for shard in (1, 3)]
    entries = []
    while len(entries) < 5:
        entries += queue.read_new("w", count=10, block_ms=10)
    doomed = [entry for entry in entries if (queue.shard_of(entry), entry.entry_id) in dead]
    queue.settle(dead=[(entry, "550 no such user") for entry in doomed])

    state = json.loads(flask_cli("queue", "status", "--json").output)
    [high, default] = state["streams"]
    assert default["pending"] == 3 and default["shards"] == SHARDS
    assert state["dead_letters"] == 2
    assert [(x["shard"], x["pending"]) for x in state["shards"]] == [(0, 1), (1, 0), (2, 2), (3, 0)]
    one = json.loads(flask_cli("queue", "status", "--json", "--shard", "2").output)
    assert one["streams"][1]["pending"] == 2 and one["dead_letters"] == 0
    assert "--shard 9" in flask_cli("queue", "status", "--shard", "9").output

    letters = json.loads(flask_cli("queue", "dead", "--json").output)
    assert sorted(letter["dead_id"].split(":")[0] for letter in letters) == ["1", "3"]
    only = json.loads(flask_cli("queue", "dead", "--json", "--shard", "3").output)
    assert [letter["event_id"] for letter in only] == [
        entry.event_id for entry in doomed if queue.shard_of(entry) == 3
    ]
    queue.drop_dead([letter["dead_id"] for letter in letters])
    assert queue.dead_count() == 0


def test_a_deleted_entry_is_published_again_on_its_shard_only(app, shop, queue):
    shop.cancellation(), shop.cancellation()
    with app.app_context():
        rows = db.session.scalars(select(MailDelivery).order_by(MailDelivery.id)).all()
        # Entry ids are per stream: two shards may each hold an entry of the same id.
        rows[0].shard, rows[1].shard = 1, 2
        rows[0].stream_entry_id = rows[1].stream_entry_id = "1-1"
        db.session.commit()
        outbox.republish_lost([Entry(queue.stream_key("default", 2), "1-1", None)], queue)
        moved = db.session.scalars(
            select(MailDelivery.id).where(MailDelivery.stream_entry_id != "1-1")
        ).all()
    assert moved == [rows[1].id]


def test_metrics_sum_the_shards_and_show_each_ones_backlog(client, queue):
    queue.ensure_group()
    for shard in (2, 2, 3):
        queue.publish("default", fields(), shard=shard)
    queue.read_new("w", count=1, block_ms=10)  # one entry of shard 2 or 3 now pending

    values = metric_values(client)
    assert values["gobarber_mail_lag", (("priority", "default"),)] == 2
    assert values["gobarber_mail_pending", (("priority", "default"),)] == 1
    backlog = {
        (dict(labels)["shard"], dict(labels)["state"]): value
        for (name, labels), value in values.items()
        if name == "gobarber_mail_shard_backlog"
    }
    assert {shard for shard, _ in backlog} == {"0", "1", "2", "3"}
    assert backlog["2", "lag"] + backlog["2", "pending"] == 2
    assert backlog["3", "lag"] + backlog["3", "pending"] == 1
    assert backlog["0", "lag"] == backlog["1", "lag"] == 0


def test_a_failing_shard_pauses_and_the_others_go_on(queue, caplog):
    queue.ensure_group()
    broken = queue.stream_key("default", 1)
    queue.redis.delete(broken)
    queue.redis.set(broken, "not a stream")  # every read of shard 1 now fails (WRONGTYPE)
    sent = [queue.publish("default", fields(), shard=0) for _ in range(3)]

    read = []
    for _ in range(3 * SHARDS):
        read += queue.read_new("w", count=10, block_ms=10)
    assert [(queue.shard_of(entry), entry.entry_id) for entry in read] == [(0, i) for i in sent]
    assert "shard 1: ResponseError: WRONGTYPE" in caplog.text
    assert "the other shards go on" in caplog.text


def test_a_single_shard_that_fails_fails_the_read(redis_conn, app):
    queue = MailQueue(redis_conn, prefix=app.config["MAIL_STREAM_PREFIX"], group="g")
    queue.ensure_group()
    queue.redis.delete(queue.stream_key("default"))
    queue.redis.set(queue.stream_key("default"), "not a stream")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        queue.read_new("w", count=10, block_ms=10)


def test_releasing_retries_between_reads_does_not_skip_a_shards_turn(queue):
    """A worker's pass may release due retries before it reads; that must not move the
    reads' turn, or with an even number of shards some would never be looked at first
    and, while the others are full, never read."""
    queue.ensure_group()
    pipe = queue.redis.pipeline(transaction=False)
    for shard in (1, 3):
        for _ in range(200):
            pipe.xadd(queue.stream_key("default", shard), fields())
    pipe.execute()
    lonely = queue.publish("default", fields(), shard=2)

    seen = []
    for _ in range(2 * SHARDS):
        queue.release_due(count=10)
        seen += queue.read_new("w", count=50, block_ms=10)
    assert lonely in [entry.entry_id for entry in seen if queue.shard_of(entry) == 2]
