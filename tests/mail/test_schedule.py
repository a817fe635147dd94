"""`MailQueue.schedule`: an event kept off its stream until its time, as a retry waits."""

import time

EVENT = "8d3c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a0f"
FIELDS = {"event_id": EVENT, "kind": "reminder", "appointment_id": "7", "created_at": "1"}


def now_ms():
    return int(time.time() * 1000)


def test_a_scheduled_event_waits_off_its_stream_until_it_is_due(queue):
    due = now_ms() + 60_000
    queue.schedule("default", FIELDS, due)

    assert queue.redis.xlen(queue.stream_key("default")) == 0
    assert queue.still_owed([("default", 0, "0-0", EVENT)]) == [True]
    moved, wait_s = queue.release_due(now_ms=due - 1)
    assert moved == []
    assert 0 < wait_s <= 0.001 + 1e-9

    [(event, entry_id)] = queue.release_due(now_ms=due)[0]
    assert event == EVENT
    [(_, fields)] = queue.redis.xrange(queue.stream_key("default"), entry_id, entry_id)
    assert fields == FIELDS
    assert not queue.redis.exists(queue.delayed_key(EVENT))


def test_scheduling_an_event_again_moves_its_time_and_keeps_one_copy(queue):
    queue.schedule("default", FIELDS, now_ms() + 60_000)
    sooner = now_ms() - 1
    queue.schedule("default", {**FIELDS, "created_at": "2"}, sooner)

    moved, wait_s = queue.release_due(now_ms=sooner + 1)
    [(event, entry_id)] = moved
    assert wait_s is None  # nothing else waits
    [(_, fields)] = queue.redis.xrange(queue.stream_key("default"), entry_id, entry_id)
    assert fields["created_at"] == "2"
