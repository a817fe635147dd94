"""The outbox: delivery rows written with the change that causes a mail, then published.

The database is the source of truth. A row is committed in the same transaction as the
cancellation; publishing to Redis comes after, and when Redis does not answer the reaper's
relay publishes the row later. A row whose stream entry vanished (a Redis restarted empty)
is published again; sending is idempotent, so a second entry costs nothing but a lookup.
"""

import logging
import uuid
from datetime import timedelta

import redis
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from gobarber.extensions import db, redis_client
from gobarber.mail import streams, transitions
from gobarber.models import MailDelivery
from gobarber.models.mail_delivery import CANCELLATION, QUEUED
from gobarber.shop_time import now

log = logging.getLogger(__name__)


def queue_cancellation_mail(*, appointment):
    """Add the provider's cancellation mail to the outbox; the caller commits."""
    provider = appointment.provider
    delivery = MailDelivery(
        event_id=str(uuid.uuid4()),
        kind=CANCELLATION,
        priority=streams.DEFAULT,
        appointment_id=appointment.id,
        recipient=f"{provider.name} <{provider.email}>",
        status=QUEUED,
        attempts=0,
        created_at=now(),
    )
    db.session.add(delivery)
    return delivery


def cancellation_delivery(*, appointment_id):
    """Return the cancellation mail's delivery row of an appointment, if any."""
    query = select(MailDelivery).where(
        MailDelivery.appointment_id == appointment_id, MailDelivery.kind == CANCELLATION
    )
    return db.session.scalar(query.order_by(MailDelivery.id.desc()).limit(1))


def publish(delivery, client=None):
    """XADD the delivery's event and record where it went."""
    entry_id = streams.add(client or redis_client.client, streams.Keys.of(), delivery)
    if db.session.get_bind().dialect.name == "postgresql":
        # This record is a hint for the relay, not the mail's truth: if a crash loses it,
        # the relay publishes again and the duplicate entry is acknowledged unsent. So it
        # need not wait for the disk, which keeps the cancel request at one durable commit.
        db.session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    db.session.execute(
        update(MailDelivery)
        .where(MailDelivery.id == delivery.id)
        .values(published_at=now(), stream_entry_id=entry_id)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    transitions.record(
        transitions.QUEUED,
        delivery,
        entry=entry_id,
    )
    return entry_id


def publish_quietly(delivery):
    """Publish now if Redis answers; otherwise leave the row for the relay.

    The cancellation is committed already: nothing here may fail the request. A row
    whose publication was not recorded is relayed later, and a second entry for the same
    event is harmless.
    """
    try:
        publish(delivery)
    except (redis.RedisError, SQLAlchemyError) as error:
        db.session.rollback()
        log.warning(
            "mail event %s not published (%s); the reaper will relay it",
            delivery.event_id,
            error,
        )


def _lock_rows(query):
    # On PostgreSQL two relays skip each other's rows instead of publishing them twice.
    return query.with_for_update(skip_locked=True)


def relay(*, unpublished_after, republish_after, limit=500, client=None):
    """Publish rows that never reached Redis, and rows whose entry Redis lost; return the count."""
    client = client or redis_client.client
    keys = streams.Keys.of()
    current = now()
    never = _lock_rows(
        select(MailDelivery)
        .where(
            MailDelivery.status == QUEUED,
            MailDelivery.published_at.is_(None),
            MailDelivery.created_at < current - timedelta(seconds=unpublished_after),
        )
        .order_by(MailDelivery.id)
        .limit(limit)
    )
    stale = _lock_rows(
        select(MailDelivery)
        .where(
            MailDelivery.status == QUEUED,
            MailDelivery.published_at < current - timedelta(seconds=republish_after),
        )
        .order_by(MailDelivery.id)
        .limit(limit)
    )
    rows = list(db.session.scalars(never))
    stale_rows = list(db.session.scalars(stale))
    if stale_rows:
        pipe = client.pipeline(transaction=False)
        for row in stale_rows:
            entry = row.stream_entry_id or "0-0"
            pipe.xrange(keys.stream(row.priority), entry, entry)
        rows += [row for row, found in zip(stale_rows, pipe.execute(), strict=True) if not found]
    for row in rows:
        log.info("relaying mail event %s (published_at=%s)", row.event_id, row.published_at)
        row.stream_entry_id = streams.add(client, keys, row)
        row.published_at = now()
    db.session.commit()
    for row in rows:
        transitions.record(
            transitions.QUEUED,
            row,
            entry=row.stream_entry_id,
            reason="relay",
        )
    return len(rows)


def record_entry_ids(pairs):
    """Record where requeued events now sit: (event id, entry id) pairs; the caller commits."""
    if not pairs:
        return
    table = MailDelivery.__table__
    # One executemany, so requeueing thousands of entries is one statement.
    db.session.execute(
        update(table)
        .where(table.c.event_id == bindparam("event"))
        .values(stream_entry_id=bindparam("entry")),
        [{"event": event, "entry": entry} for event, entry in pairs],
    )
