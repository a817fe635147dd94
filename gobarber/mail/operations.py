"""What an operator asks of the mail queue: its state, its dead letters and held mails,
and putting mails back. The CLI (`flask queue ...`) and the admin page read here; `/metrics` reads
the same queue through `gobarber.mail.metrics`."""

import logging
from datetime import timedelta

from sqlalchemy import and_, case, func, select

from gobarber.extensions import db
from gobarber.mail import outbox
from gobarber.mail.queue import is_event_id
from gobarber.models import Appointment, MailDelivery, User
from gobarber.models.mail_delivery import DeliveryStatus, MailKind
from gobarber.shop_time import now

log = logging.getLogger(__name__)


class ConsumerActive(Exception):
    """The consumer to forget does not look gone."""


# The columns operators read, in this order: `scheduled` is a `queued` row whose
# `due_at` is still ahead, and is counted there only.
SHOWN_STATUSES = (
    DeliveryStatus.SCHEDULED,
    DeliveryStatus.QUEUED,
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.HELD,
    DeliveryStatus.CANCELED,
)


def _zero_counts():
    return {str(status): 0 for status in SHOWN_STATUSES}


def _millis(moment):
    return None if moment is None else int(moment.timestamp() * 1000)


def _counts_query(moment):
    """(kind, shown status, count, count of the last hour, earliest due_at) per group."""
    ahead = and_(MailDelivery.status == DeliveryStatus.QUEUED, MailDelivery.due_at > moment)
    # Grouped over a subquery, so the CASE and its parameters are written once.
    rows = select(
        MailDelivery.kind,
        case((ahead, DeliveryStatus.SCHEDULED.value), else_=MailDelivery.status).label("shown"),
        MailDelivery.created_at,
        MailDelivery.due_at,
    ).subquery()
    return select(
        rows.c.kind,
        rows.c.shown,
        func.count(),
        func.count().filter(rows.c.created_at >= moment - timedelta(hours=1)),
        func.min(rows.c.due_at),
    ).group_by(rows.c.kind, rows.c.shown)


def delivery_counts():
    """Deliveries by kind and status, over the last hour and in total, with each kind's
    next due time; `total`, `last_hour` and `next_due_ms` alone are over every kind."""
    by_kind = {
        str(kind): {"total": _zero_counts(), "last_hour": _zero_counts()} for kind in MailKind
    }
    every_kind = {"total": _zero_counts(), "last_hour": _zero_counts()}
    next_due = {}
    for kind, shown, total, last_hour, earliest in db.session.execute(_counts_query(now())):
        counts = by_kind.setdefault(kind, {"total": _zero_counts(), "last_hour": _zero_counts()})
        for period, count in (("total", total), ("last_hour", last_hour)):
            counts[period][shown] = count
            every_kind[period][shown] = every_kind[period].get(shown, 0) + count
        if shown == DeliveryStatus.SCHEDULED:
            next_due[kind] = earliest
    for kind, counts in by_kind.items():
        counts["next_due_ms"] = _millis(next_due.get(kind))
    every_kind["next_due_ms"] = _millis(min(next_due.values(), default=None))
    return {**every_kind, "by_kind": by_kind}


def status(queue, *, shard=None):
    """The whole picture: streams (summed over the shards, or of one `shard`), each
    shard's backlog, dead letters, held mails (the count and the oldest), deliveries by
    kind and status."""
    deliveries = delivery_counts()
    streams = queue.stream_states(shard)
    return {
        "streams": queue.state(shard, streams),
        "shards": queue.shard_states(streams) if shard is None and len(queue.shards) > 1 else [],
        "dead_letters": queue.dead_count(shard),
        "held": deliveries["total"][DeliveryStatus.HELD],
        "held_mails": held_mails(),
        "deliveries": deliveries,
    }


def held_mails(limit=100):
    """The oldest held mails: event, recipient, and the customer whose cancels they are."""
    query = (
        select(MailDelivery, User.email)
        .outerjoin(Appointment, Appointment.id == MailDelivery.appointment_id)
        .outerjoin(User, User.id == Appointment.user_id)
        .where(MailDelivery.status == DeliveryStatus.HELD)
        .order_by(MailDelivery.id)
        .limit(limit)
    )
    return [
        {
            "event_id": row.event_id,
            "kind": row.kind,
            "recipient": row.recipient,
            "customer": customer,
            "appointment_id": row.appointment_id,
            "held_at_ms": int(row.created_at.timestamp() * 1000),
        }
        for row, customer in db.session.execute(query)
    ]


def release(queue, *, event_id=None):
    """Queue held mails and publish them; return the event ids.

    With `event_id`, only that event; without, every held mail. Running it twice releases
    nothing the second time: the mail is no longer held by then.
    """
    return outbox.release(outbox.held_deliveries(event_id=event_id), queue)


def _rows_of(event_ids):
    event_ids = [event for event in event_ids if is_event_id(event)]
    if not event_ids:
        return {}
    query = select(MailDelivery).where(MailDelivery.event_id.in_(event_ids))
    return {row.event_id: row for row in db.session.scalars(query)}


def dead_letters(queue, limit=100, *, shard=None):
    """The newest dead letters (of every shard, or of one), with the delivery row's
    recipient and attempts."""
    entries = queue.dead_letters(limit, shard=shard)
    rows = _rows_of([fields.get("event_id") for _, fields in entries])
    letters = []
    for dead_id, fields in entries:
        row = rows.get(fields.get("event_id"))
        dead_at = fields.get("dead_at", "")
        letters.append(
            {
                "dead_id": dead_id,
                "event_id": fields.get("event_id"),
                "kind": fields.get("kind"),
                "recipient": row.recipient if row else None,
                "attempts": row.attempts if row else None,
                "status": row.status if row else None,
                "error": fields.get("error"),
                "dead_at_ms": int(dead_at) if dead_at.isdigit() else None,
                "retryable": row is not None,
            }
        )
    return letters


def retry(queue, *, event_id=None):
    """Put dead letters back on their streams with fresh attempts; return the event ids.

    With `event_id`, only that event; without, every dead letter that has a delivery row.
    Running it twice retries nothing the second time: the dead letter is gone by then.
    """
    by_event = {}
    for dead_id, fields in reversed(queue.dead_letters()):
        if event_id is None or fields.get("event_id") == event_id:
            by_event.setdefault(fields.get("event_id"), []).append(dead_id)
    rows = _rows_of(list(by_event))
    retried = []
    for event, dead_ids in by_event.items():
        row = rows.get(event)
        if row is None:
            continue  # an unreadable entry: nothing to send; it stays for a person to read
        if row.status != DeliveryStatus.SENT:
            outbox.reset_for_retry(row)
            db.session.commit()
            outbox.publish(row, queue)
            log.info("mail event %s put back by an operator", event)
            retried.append(event)
        queue.drop_dead(dead_ids)
    return retried


def forget_consumer(queue, name, *, visibility_ms):
    """Remove a consumer that is gone, first requeueing what it held; return that count.

    Refuses while the consumer touched one of its pending entries within the visibility
    timeout: it may still be working on it.
    """
    if name not in queue.consumer_names():
        return 0
    held = queue.held_by(name)
    busy = [entry for entry in held if entry.idle_ms < visibility_ms]
    if busy:
        raise ConsumerActive(
            f"consumer {name} took an entry {busy[0].idle_ms / 1000:.0f}s ago; "
            "it may still be running"
        )
    moved = queue.settle(requeued=queue.claim(name, held))
    outbox.record_entry_ids(moved)
    db.session.commit()
    queue.remove_consumer(name)
    return len(moved)
