"""What an operator asks of the mail queue: its state, its dead letters, and putting
mails back. The CLI (`flask queue ...`), the admin page and `/metrics` all read here."""

import logging
from datetime import timedelta

from sqlalchemy import func, select

from gobarber.extensions import db
from gobarber.mail import outbox, streams
from gobarber.mail.delivery import is_valid_event_id, requeue
from gobarber.models import MailDelivery
from gobarber.models.mail_delivery import FAILED, QUEUED, SENT
from gobarber.shop_time import now

log = logging.getLogger(__name__)

STATUSES = (QUEUED, SENT, FAILED)


def _entry_ms(entry_id):
    return int(entry_id.split("-")[0])


def stream_state(client, keys):
    """Length, pending, lag, oldest pending age and consumers of each priority stream."""
    states = []
    for priority in streams.PRIORITIES:
        key = keys.stream(priority)
        state = {
            "priority": priority,
            "stream": key,
            "length": client.xlen(key),
            "pending": 0,
            "lag": None,
            "oldest_pending_age_s": None,
            "consumers": [],
        }
        groups = {g["name"]: g for g in client.xinfo_groups(key)} if client.exists(key) else {}
        group = groups.get(keys.group)
        if group is None:
            state["lag"] = state["length"]  # no group yet: nothing was delivered
        else:
            state["pending"] = group["pending"]
            state["lag"] = group.get("lag")
            if state["lag"] is None:  # Redis 6.2 does not report lag
                state["lag"] = max(state["length"] - state["pending"], 0)
            summary = client.xpending(key, keys.group)
            if summary["pending"]:
                oldest = client.xrange(key, summary["min"], summary["min"])
                born = _entry_ms(summary["min"])
                if oldest and oldest[0][1].get("created_at", "").isdigit():
                    born = int(oldest[0][1]["created_at"])
                state["oldest_pending_age_s"] = round(streams.now_ms() / 1000 - born / 1000, 1)
            state["consumers"] = [
                {"name": c["name"], "pending": c["pending"], "idle_s": round(c["idle"] / 1000, 1)}
                for c in client.xinfo_consumers(key, keys.group)
            ]
        states.append(state)
    return states


def delivery_counts():
    """Deliveries by status over the last hour and in total."""
    since = now() - timedelta(hours=1)
    counts = {"last_hour": dict.fromkeys(STATUSES, 0), "total": dict.fromkeys(STATUSES, 0)}
    by_status = select(MailDelivery.status, func.count()).group_by(MailDelivery.status)
    for status, count in db.session.execute(by_status):
        counts["total"][status] = count
    recent = by_status.where(MailDelivery.created_at >= since)
    for status, count in db.session.execute(recent):
        counts["last_hour"][status] = count
    return counts


def status(client, keys):
    """The whole picture: streams, dead letters, deliveries by status."""
    return {
        "streams": stream_state(client, keys),
        "dead_letters": client.xlen(keys.dead),
        "deliveries": delivery_counts(),
    }


def dead_letters(client, keys, limit=100):
    """The newest dead letters, with the delivery row's recipient and attempts."""
    entries = client.xrevrange(keys.dead, count=limit)
    event_ids = [f.get("event_id") for _, f in entries if is_valid_event_id(f.get("event_id"))]
    rows = {}
    if event_ids:
        query = select(MailDelivery).where(MailDelivery.event_id.in_(event_ids))
        rows = {row.event_id: row for row in db.session.scalars(query)}
    letters = []
    for dead_id, fields in entries:
        row = rows.get(fields.get("event_id"))
        letters.append(
            {
                "dead_id": dead_id,
                "event_id": fields.get("event_id"),
                "kind": fields.get("kind"),
                "recipient": row.recipient if row else None,
                "attempts": row.attempts if row else None,
                "status": row.status if row else None,
                "error": fields.get("error"),
                "dead_at_ms": int(fields["dead_at"])
                if fields.get("dead_at", "").isdigit()
                else None,
                "retryable": row is not None,
            }
        )
    return letters


def retry(client, keys, *, event_id=None):
    """Put dead letters back on their streams with fresh attempts; return the event ids.

    With `event_id`, only that event; without, every dead letter that has a delivery row.
    Running it twice retries nothing the second time: the dead letter is gone by then.
    """
    by_event = {}
    for dead_id, fields in client.xrange(keys.dead):
        if event_id is None or fields.get("event_id") == event_id:
            by_event.setdefault(fields.get("event_id"), []).append(dead_id)
    retried = []
    for event, dead_ids in by_event.items():
        row = None
        if is_valid_event_id(event):
            row = db.session.scalar(select(MailDelivery).where(MailDelivery.event_id == event))
        if row is None:
            continue  # an unreadable entry: nothing to send; it stays for a person to read
        if row.status != SENT:
            requeue(row)
            db.session.commit()
            outbox.publish(row, client)
            log.info("mail event %s put back by an operator", event)
            retried.append(event)
        client.xdel(keys.dead, *dead_ids)
    return retried


def forget_consumer(client, keys, name, *, visibility_ms):
    """Remove a consumer that is gone, first requeueing what it held; return that count.

    Refuses while the consumer touched one of its pending entries within the visibility
    timeout: it may still be working on it.
    """
    moved = 0
    for key in keys.streams:
        if not client.exists(key):
            continue
        if name not in {c["name"] for c in client.xinfo_consumers(key, keys.group)}:
            continue
        held = client.xpending_range(key, keys.group, "-", "+", 10_000, consumername=name)
        busy = [p for p in held if p["time_since_delivered"] < visibility_ms]
        if busy:
            raise ConsumerActive(
                f"consumer {name} took an entry {busy[0]['time_since_delivered'] / 1000:.0f}s "
                "ago; it may still be running"
            )
        ids = [p["message_id"] for p in held]
        if ids:
            claimed = client.xclaim(key, keys.group, name, 0, ids)
            moved_entries = requeue_entries(client, keys, key, claimed)
            outbox.record_entry_ids(moved_entries)
            db.session.commit()
            moved += len(moved_entries)
        client.xgroup_delconsumer(key, keys.group, name)
    return moved


class ConsumerActive(Exception):
    """The consumer to forget does not look gone."""


def requeue_entries(client, keys, key, claimed):
    """Put claimed entries back at the end of their stream for any worker; ack the old ones.

    One MULTI/EXEC, so an entry is never acknowledged without its new copy. Returns
    (event id, new entry id) pairs; an entry whose body Redis lost is only acknowledged.
    """
    live = [(entry_id, fields) for entry_id, fields in claimed if fields]
    gone = [entry_id for entry_id, fields in claimed if not fields]
    pipe = client.pipeline(transaction=True)
    for _, fields in live:
        redeliveries = int(fields.get("redeliveries", "0") or 0) + 1
        pipe.xadd(key, {**fields, "redeliveries": str(redeliveries)})
    ids = [entry_id for entry_id, _ in live] + gone
    if ids:
        pipe.xack(key, keys.group, *ids)
        pipe.xdel(key, *ids)
    results = pipe.execute()
    return list(zip([f.get("event_id") for _, f in live], results[: len(live)], strict=True))
