"""A worker's read takes the send locks of what it reads, in the same round trip."""

import uuid

import pytest

LOCK_MS = 5000


@pytest.fixture
def config_overrides():
    return {"MAIL_STREAM_SHARDS": 4}


def publish(queue, shard, event_id=None):
    event_id = event_id or str(uuid.uuid4())
    queue.publish("default", {"event_id": event_id, "kind": "cancellation"}, shard=shard)
    return event_id


def read_all(queue, consumer, **kwargs):
    entries = []
    for _ in range(len(queue.reading) * 2):  # every shard gets its turn
        entries += queue.read_new(consumer, count=10, block_ms=None, **kwargs)
    return entries


def test_a_locking_read_takes_each_events_send_lock_in_its_shard(queue, redis_conn):
    queue.ensure_group()
    events = {publish(queue, shard): shard for shard in (0, 2, 3)}

    entries = read_all(queue, "worker-a", lock_ms=LOCK_MS)

    assert {entry.event_id for entry in entries} == set(events)
    assert all(entry.locked for entry in entries)
    for event_id, shard in events.items():
        key = queue.lock_key(event_id, shard)
        assert redis_conn.get(key) == "worker-a"
        assert 0 < redis_conn.pttl(key) <= LOCK_MS


def test_an_event_another_consumer_is_sending_comes_unlocked(queue, redis_conn):
    queue.ensure_group()
    event_id = publish(queue, 1)
    redis_conn.set(queue.lock_key(event_id, 1), "worker-b", px=LOCK_MS)

    [entry] = read_all(queue, "worker-a", lock_ms=LOCK_MS)

    assert not entry.locked
    assert redis_conn.get(queue.lock_key(event_id, 1)) == "worker-b"


def test_entries_naming_no_event_are_not_locked(queue, redis_conn):
    queue.ensure_group()
    queue.publish("default", {"event_id": "not-a-uuid", "kind": "cancellation"}, shard=0)
    upper = str(uuid.uuid4()).upper()  # not what the outbox writes, as is_event_id says
    queue.publish("default", {"event_id": upper, "kind": "cancellation"}, shard=0)

    entries = read_all(queue, "worker-a", lock_ms=LOCK_MS)

    assert len(entries) == 2
    assert not any(entry.locked or entry.is_readable for entry in entries)
    assert not redis_conn.keys(queue.lock_key("*", 0))


def test_a_read_without_lock_ms_takes_no_lock(queue, redis_conn):
    queue.ensure_group()
    event_id = publish(queue, 2)

    [entry] = read_all(queue, "worker-a")

    assert not entry.locked
    assert not redis_conn.exists(queue.lock_key(event_id, 2))
