"""The outbox: delivery rows written with the change that causes a mail, then published.

The database is the source of truth. A row is committed in the same transaction as the
cancellation; publishing to Redis comes after, and when Redis does not answer the reaper's
relay publishes the row later. A row whose stream entry vanished (a Redis restarted empty)
is published again; sending is idempotent, so a second entry costs nothing but a lookup.
A `held` row (a customer over the day's cancellation mails) is never published, relayed
or republished: only `queued` rows are, and an operator's release makes it one.

A row with a `due_at` still ahead (a reminder) is scheduled rather than published: it
waits in Redis as a retry waits, and `MailQueue.release_due` puts it on its stream when
it is due. Relaying follows the same rule, so a Redis restarted empty loses no reminder.
"""

import logging
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, case, func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from gobarber.database import commit_without_waiting_for_disk
from gobarber.extensions import db, mail_queue, publishing_queue
from gobarber.mail.queue import Priority, shard_for
from gobarber.mail.transitions import Transition, record
from gobarber.models import Appointment, MailDelivery
from gobarber.models.mail_delivery import DeliveryStatus, MailKind
from gobarber.redis_connection import REDIS_ERRORS
from gobarber.shop_time import now

log = logging.getLogger(__name__)


# How far back a customer's cancellation mails count against `CANCELLATION_MAILS_PER_DAY`.
MAIL_CAP_WINDOW = timedelta(hours=24)
_appointment = Appointment.__table__.alias("mailed")
_mails_of_the_day = (
    select(func.count())
    .select_from(MailDelivery)
    .join(_appointment, _appointment.c.id == MailDelivery.appointment_id)
    .where(
        _appointment.c.user_id == bindparam("customer_id"),
        MailDelivery.kind == MailKind.CANCELLATION,
        MailDelivery.status != DeliveryStatus.HELD,
        MailDelivery.created_at >= bindparam("since", type_=MailDelivery.created_at.type),
    )
    .scalar_subquery()
)
# Held or queued is decided by the INSERT itself: one round trip, and the count is taken
# after the caller's lock on the customer, so concurrent cancels count each other's.
_ADD_CANCELLATION_MAIL = (
    insert(MailDelivery)
    .values(
        status=case(
            (_mails_of_the_day >= bindparam("daily_cap"), DeliveryStatus.HELD),
            else_=DeliveryStatus.QUEUED,
        )
    )
    .returning(MailDelivery.id, MailDelivery.status)
)


def add_cancellation_mail(connection, *, appointment_id, customer_id, recipient, daily_cap):
    """Insert the provider's cancellation mail into the outbox, in the caller's
    transaction on `connection` (which holds the customer's row locked); `held`, for an
    operator to release, once the customer's mails of the last 24 hours reach
    `daily_cap`. Return its row, a MailDelivery outside the session."""
    event_id = str(uuid.uuid4())
    columns = {
        "event_id": event_id,
        "shard": shard_for(event_id, current_app.config["MAIL_STREAM_SHARDS"]),
        "kind": MailKind.CANCELLATION,
        "priority": Priority.DEFAULT,
        "appointment_id": appointment_id,
        # The address alone: the name joins it in the `To` header at render time only.
        "recipient": recipient,
        "attempts": 0,
        "created_at": now(),
    }
    added = connection.execute(
        _ADD_CANCELLATION_MAIL,
        {
            **columns,
            "customer_id": customer_id,
            "since": columns["created_at"] - MAIL_CAP_WINDOW,
            "daily_cap": daily_cap,
        },
    ).one()
    return MailDelivery(id=added.id, status=added.status, **columns)


def queue_password_reset_mail(*, reset, user):
    """Add the mail carrying a password reset's link to the outbox, on the high-priority
    stream; the caller commits."""
    delivery = _new_delivery(
        kind=MailKind.PASSWORD_RESET,
        priority=Priority.HIGH,
        password_reset=reset,
        # The address alone, as for a cancellation; the link is written at render time
        # from the reset row, so no token is ever stored here or on the stream.
        recipient=user.email,
        status=DeliveryStatus.QUEUED,
        attempts=0,
        created_at=now(),
    )
    db.session.add(delivery)
    return delivery


def _new_delivery(**columns):
    """A delivery row with a fresh event id, on the shard of the streams that id hashes to."""
    event_id = str(uuid.uuid4())
    shards = current_app.config["MAIL_STREAM_SHARDS"]
    return MailDelivery(event_id=event_id, shard=shard_for(event_id, shards), **columns)


def cancellation_delivery(*, appointment_id):
    """Return the cancellation mail's delivery row of an appointment, if any."""
    query = select(MailDelivery).where(
        MailDelivery.appointment_id == appointment_id, MailDelivery.kind == MailKind.CANCELLATION
    )
    return db.session.scalar(query.order_by(MailDelivery.id.desc()).limit(1))


def queue_reminder(*, appointment):
    """Add the customer's reminder, due `MAIL_REMINDER_BEFORE` ahead of the appointment, to
    the outbox; return it, or None when reminders are off or it would be due already. The
    caller commits."""
    before = current_app.config["MAIL_REMINDER_BEFORE"]
    if not before:
        return None
    due_at = appointment.date - timedelta(seconds=before)
    created_at = now()
    if due_at <= created_at:
        return None
    delivery = _new_delivery(
        kind=MailKind.REMINDER,
        priority=Priority.DEFAULT,
        appointment_id=appointment.id,
        recipient=appointment.user.email,
        status=DeliveryStatus.QUEUED,
        attempts=0,
        created_at=created_at,
        due_at=due_at,
    )
    db.session.add(delivery)
    return delivery


def reminder_delivery(*, appointment_id):
    """Return the reminder's delivery row of an appointment, if any."""
    query = select(MailDelivery).where(
        MailDelivery.appointment_id == appointment_id, MailDelivery.kind == MailKind.REMINDER
    )
    return db.session.scalar(query.order_by(MailDelivery.id.desc()).limit(1))


_CANCEL_REMINDERS = (
    update(MailDelivery)
    .where(
        MailDelivery.appointment_id == bindparam("appointment"),
        MailDelivery.kind == MailKind.REMINDER,
        MailDelivery.status == DeliveryStatus.QUEUED,
    )
    .values(status=DeliveryStatus.CANCELED, last_error="appointment canceled")
    .returning(*MailDelivery.__table__.c)
)


def cancel_reminder(connection, *, appointment_id, reminder_id):
    """Mark an appointment's reminder canceled if it is still owed, in the caller's
    transaction on `connection`; return the reminder `reminder_id` (its latest) as it now
    stands, a MailDelivery outside the session.

    Redis is left alone: when the event falls due, the worker finds the row canceled and
    acknowledges it unsent.
    """
    rows = connection.execute(_CANCEL_REMINDERS, {"appointment": appointment_id}).all()
    row = next((row for row in rows if row.id == reminder_id), None)
    if row is None:  # no longer owed: sent, failed or canceled already
        row = connection.execute(
            select(*MailDelivery.__table__.c).where(MailDelivery.id == reminder_id)
        ).one()
    return MailDelivery(**row._mapping)


def entry_fields(delivery):
    """Return the stream fields of a delivery's event: flat strings, ids to re-read."""
    return {
        "event_id": delivery.event_id,
        "kind": delivery.kind,
        "appointment_id": str(delivery.appointment_id or ""),
        "created_at": str(int(delivery.created_at.timestamp() * 1000)),
    }


def _due_ms(delivery):
    """The delivery's due time in epoch milliseconds if it is still ahead, else None."""
    if delivery.due_at is None or delivery.due_at <= now():
        return None
    return int(delivery.due_at.timestamp() * 1000)


def _put_on_stream(delivery, queue):
    """Publish the event, or schedule it when it is due later; return the entry id (None
    for a scheduled event: `release_due` records it once the event is on its stream)."""
    due_ms = _due_ms(delivery)
    if due_ms is not None:
        queue.schedule(delivery.priority, entry_fields(delivery), due_ms, delivery.shard)
        return None
    return queue.publish(delivery.priority, entry_fields(delivery), delivery.shard)


def publish(delivery, queue=None):
    """Put the delivery's event on its stream (or schedule it, when due later) and record
    where it went."""
    entry_id = _put_on_stream(delivery, queue or mail_queue.get())
    db.session.execute(
        update(MailDelivery)
        .where(MailDelivery.id == delivery.id)
        .values(published_at=now(), stream_entry_id=entry_id)
        .execution_options(synchronize_session=False)
    )
    # This record is a hint for the relay, not the mail's truth: if a crash loses it, the
    # relay publishes again and the duplicate entry is acknowledged unsent. So it need not
    # wait for the disk, which keeps a request that publishes at one durable commit.
    commit_without_waiting_for_disk()
    record(Transition.QUEUED, delivery, entry=entry_id, **_due_field(delivery))
    return entry_id


def _due_field(delivery):
    # A scheduled mail's log line says when it is due; others say nothing of it.
    return {"due_at": delivery.due_at.isoformat()} if delivery.due_at is not None else {}


def publish_quietly(delivery, queue=None):
    """Publish now if Redis answers; otherwise leave the row for the relay.

    The cancellation is committed already: nothing here may fail the request. A row
    whose publication was not recorded is relayed later, and a second entry for the same
    event is harmless.
    """
    try:
        publish(delivery, queue or publishing_queue.get())
    except (*REDIS_ERRORS, SQLAlchemyError) as error:
        db.session.rollback()
        log.warning(
            "mail event %s not published (%s); the reaper will relay it",
            delivery.event_id,
            error,
        )


_RECORD_PUBLISHED = (
    update(MailDelivery)
    .where(MailDelivery.id == bindparam("delivery_id"))
    .values(published_at=bindparam("at"), stream_entry_id=bindparam("entry_id"))
)
# The same, for PostgreSQL, in a transaction of its own that does not wait for the disk
# (set_config(..., true) lasts until the statement's own commit): as in `publish`, the
# record is a hint for the relay, so the cancel keeps one durable commit, and it costs one
# round trip instead of BEGIN, SET LOCAL, UPDATE and COMMIT.
_RECORD_PUBLISHED_LAZILY = _RECORD_PUBLISHED.where(
    func.set_config("synchronous_commit", "off", True).is_not(None)
)


def publish_committed(delivery, connection):
    """Publish a delivery that the caller's transaction on `connection` has just
    committed, and record where it went on the same connection.

    As `publish_quietly`, with the request's quick client: nothing here may fail the
    request, and a row whose publication was not recorded is relayed later.
    """
    try:
        entry_id = _put_on_stream(delivery, publishing_queue.get())
        connection.execution_options(isolation_level="AUTOCOMMIT")
        postgresql = connection.dialect.name == "postgresql"
        connection.execute(
            _RECORD_PUBLISHED_LAZILY if postgresql else _RECORD_PUBLISHED,
            {"delivery_id": delivery.id, "at": now(), "entry_id": entry_id},
        )
    except (*REDIS_ERRORS, SQLAlchemyError) as error:
        log.warning(
            "mail event %s not published (%s); the reaper will relay it",
            delivery.event_id,
            error,
        )
        return
    record(Transition.QUEUED, delivery, entry=entry_id, **_due_field(delivery))


def _lock_rows(query):
    # On PostgreSQL two relays skip each other's rows instead of publishing them twice.
    return query.with_for_update(skip_locked=True)


def relay(*, unpublished_after, republish_after, limit=500, queue=None):
    """Publish rows that never reached Redis, and rows whose entry Redis lost; return the count.

    A row due later is scheduled instead. A scheduled row is not stale before its due
    time plus `republish_after` (until then it may rightly sit in Redis with no entry),
    so rows due in the future never fill the stale check's batch.
    """
    queue = queue or mail_queue.get()
    current = now()
    stale_before = current - timedelta(seconds=republish_after)
    never = _lock_rows(
        select(MailDelivery)
        .where(
            MailDelivery.status == DeliveryStatus.QUEUED,
            MailDelivery.published_at.is_(None),
            MailDelivery.created_at < current - timedelta(seconds=unpublished_after),
        )
        .order_by(MailDelivery.id)
        .limit(limit)
    )
    stale = _lock_rows(
        select(MailDelivery)
        .where(
            MailDelivery.status == DeliveryStatus.QUEUED,
            MailDelivery.published_at < stale_before,
            or_(MailDelivery.due_at.is_(None), MailDelivery.due_at < stale_before),
        )
        .order_by(MailDelivery.id)
        .limit(limit)
    )
    rows = list(db.session.scalars(never))
    stale_rows = list(db.session.scalars(stale))
    found = queue.still_owed(
        [
            (row.priority, row.shard, row.stream_entry_id or "0-0", row.event_id)
            for row in stale_rows
        ]
    )
    rows += [row for row, there in zip(stale_rows, found, strict=True) if not there]
    for row in rows:
        log.info(
            "relaying mail event %s (published_at=%s, due_at=%s)",
            row.event_id,
            row.published_at,
            row.due_at,
        )
        row.stream_entry_id = _put_on_stream(row, queue)
        row.published_at = now()
    db.session.commit()
    for row in rows:
        record(
            Transition.QUEUED,
            row,
            entry=row.stream_entry_id,
            reason="relay",
            **_due_field(row),
        )
    return len(rows)


def republish_lost(entries, queue=None):
    """Publish again the still-queued rows whose entries Redis deleted while pending."""
    queue = queue or mail_queue.get()
    by_shard = {}
    for entry in entries:
        by_shard.setdefault(queue.shard_of(entry), []).append(entry.entry_id)
    for shard, entry_ids in by_shard.items():
        # Entry ids are per stream: two shards may each have one of the same id.
        query = select(MailDelivery).where(
            MailDelivery.shard == shard,
            MailDelivery.stream_entry_id.in_(entry_ids),
            MailDelivery.status == DeliveryStatus.QUEUED,
        )
        for row in db.session.scalars(query):
            log.warning("mail event %s was deleted while pending; publishing again", row.event_id)
            publish(row, queue)


def held_deliveries(*, event_id=None, limit=None):
    """Held rows, oldest first (only `event_id`'s if given), locked for a release.

    On PostgreSQL two operators releasing at once skip each other's rows instead of
    publishing them twice.
    """
    query = select(MailDelivery).where(MailDelivery.status == DeliveryStatus.HELD)
    if event_id is not None:
        query = query.where(MailDelivery.event_id == event_id)
    return list(db.session.scalars(_lock_rows(query.order_by(MailDelivery.id).limit(limit))))


def release(rows, queue=None):
    """Make held rows queued and publish them; return their event ids.

    A row Redis does not take now stays queued for the relay, like a cancel's.
    """
    for row in rows:
        row.status = DeliveryStatus.QUEUED
    db.session.commit()
    for row in rows:
        log.info("mail event %s released by an operator", row.event_id)
        publish_quietly(row, queue)
    return [row.event_id for row in rows]


def reset_for_retry(delivery):
    """Make a failed delivery queued again with fresh attempts (an operator's retry).

    `failed_at` stays: it tells when the customer was told the mail failed, so that a
    later success tells them again.
    """
    delivery.status = DeliveryStatus.QUEUED
    delivery.attempts = 0
    return delivery


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
