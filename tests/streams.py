"""What the mail streams and the outbox hold, and steering them into a known state.

Pending counts, a consumer that takes entries and dies, what is still owed over both
priority streams, the delivery rows; and running a worker until a condition holds.
"""

import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import insert, select

from gobarber.extensions import db, mail_queue, redis_store
from gobarber.models import MailDelivery

HOUR_MS = 3_600_000


def pending(queue, priority="default"):
    """How many entries of the `priority` stream are read but not acknowledged."""
    return queue.redis.xpending(queue.stream_key(priority), queue.group)["pending"]


def abandon(queue, consumer="dead-worker", idle_ms=HOUR_MS):
    """Have a consumer take every new entry and die: they stay pending, idle for an hour."""
    reply = queue.redis.xreadgroup(
        queue.group, consumer, {queue.stream_key("default"): ">"}, count=1000
    )
    ids = [entry_id for _, messages in reply for entry_id, _ in messages]
    # XCLAIM's IDLE sets how long the entries look untouched, without waiting for it.
    queue.redis.xclaim(queue.stream_key("default"), queue.group, consumer, 0, ids, idle=idle_ms)
    return ids


def abandon_on_its_last_delivery(queue, event_id, max_attempts):
    """Make `event_id` the stream's only entry, handed out `max_attempts - 1` times already,
    and have a consumer take it and die: the reaper's next look is its last chance."""
    stream = queue.stream_key("default")
    queue.redis.xtrim(stream, maxlen=0)
    queue.redis.xadd(
        stream,
        {"event_id": event_id, "kind": "cancellation", "redeliveries": str(max_attempts - 1)},
    )
    return abandon(queue)


def owed(app, client=None):
    """Entries still pending or not yet read, over both priority streams."""
    queue = mail_queue.get(app)
    client = client or redis_store.get(app)
    total = 0
    for stream in queue.stream_keys:
        if client.exists(stream):
            total += client.xlen(stream)
            groups = {g["name"]: g for g in client.xinfo_groups(stream)}
            if queue.group in groups:
                total += groups[queue.group]["pending"]
    return total


def deliveries(app):
    """Every delivery row, read fresh."""
    with app.app_context():
        rows = db.session.scalars(select(MailDelivery)).all()
        db.session.expunge_all()
        return rows


def run_until_settled(worker, condition, *, what, timeout=10.0):
    """Run worker passes until `condition` holds; fail naming `what` after `timeout` s.

    Retries are due after a short backoff, so a few passes may find nothing to do.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"worker passes for {timeout}s did not bring about {what}")
        worker.loop()


def insert_deliveries(app, count, *, kind, appointment_id, recipient, **columns):
    """Write `count` queued, published delivery rows in one statement (backlogs of
    thousands); return their rows as dicts."""
    created = datetime.now(UTC)
    rows = [
        {
            "event_id": str(uuid.uuid4()),
            "kind": kind,
            "priority": "default",
            "appointment_id": appointment_id,
            "recipient": recipient,
            "status": "queued",
            "attempts": 0,
            "created_at": created,
            "updated_at": created,
            "published_at": created,
            **columns,
        }
        for _ in range(count)
    ]
    with app.app_context():
        db.session.execute(insert(MailDelivery), rows)
        db.session.commit()
    return rows
