"""Deliver stream entries: send once, record, acknowledge; retry or dead-letter failures.

The order that makes a mail arrive once: send, record the delivery as sent (commit), then
XACK. A redelivered entry whose delivery is recorded as sent is acknowledged unsent, so a
duplicate needs a worker to die between the SMTP server's reply and the commit.
"""

import logging
import random
import re
import time
from dataclasses import dataclass, field
from functools import cached_property

import redis
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import joinedload

from gobarber.extensions import db
from gobarber.mail import streams, transitions
from gobarber.mail.messages import Unrenderable, describe_customer_notice, render
from gobarber.mail.smtp import SmtpSession, describe, is_permanent
from gobarber.models import Appointment, MailDelivery
from gobarber.models.mail_delivery import FAILED, QUEUED, SENT
from gobarber.services.notifications import notify
from gobarber.shop_time import now

log = logging.getLogger(__name__)

# SET NX PX on every key; returns 1 for each lock taken, 0 for each held by someone else.
SET_LOCKS = """
local taken = {}
for i, key in ipairs(KEYS) do
  taken[i] = redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
end
return taken
"""


@dataclass(frozen=True)
class Entry:
    """One stream entry as read from Redis; `fields` is None when Redis lost its body."""

    stream: str
    entry_id: str
    fields: dict | None

    @property
    def event_id(self):
        return (self.fields or {}).get("event_id")

    @cached_property
    def has_valid_event_id(self):
        """Whether the event id is a UUID; parsed once, as deliver, lock and finish all ask."""
        return is_valid_event_id(self.event_id)

    @property
    def redeliveries(self):
        try:
            return int((self.fields or {}).get("redeliveries", 0))
        except ValueError:
            return 0


@dataclass
class Outcome:
    """What became of a batch: acknowledged, dead-lettered, to retry, or left alone."""

    done: list = field(default_factory=list)
    dead: list = field(default_factory=list)  # (entry, reason)
    retry: list = field(default_factory=list)  # (entry, seconds until due)
    left: list = field(default_factory=list)
    sent: int = 0


def parse_entries(stream, reply):
    """Turn an XREADGROUP / XCLAIM reply for one stream into entries."""
    return [Entry(stream, entry_id, fields or None) for entry_id, fields in reply]


# A canonical UUID (what uuid4() prints): a regex is ten times cheaper than uuid.UUID().
_EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_valid_event_id(value):
    return isinstance(value, str) and _EVENT_ID.fullmatch(value) is not None


def backoff_seconds(attempts, *, base, cap):
    """Exponential backoff with jitter: half fixed, half random, capped."""
    delay = min(cap, base * 2 ** max(attempts - 1, 0))
    return delay / 2 + random.uniform(0, delay / 2)


def finish(client, keys, outcome):
    """Acknowledge and remove done entries; copy dead ones to the dead-letter stream first.

    One MULTI/EXEC: a dead letter is never acknowledged without its copy, and an
    acknowledged entry is deleted at once so the stream holds only what is still owed.
    """
    if not outcome.done and not outcome.dead:
        return
    pipe = client.pipeline(transaction=True)
    for entry, reason in outcome.dead:
        copy = dict(entry.fields or {})
        copy.update(
            stream=entry.stream,
            entry_id=entry.entry_id,
            error=reason,
            dead_at=str(streams.now_ms()),
        )
        pipe.xadd(keys.dead, copy)
    settled = outcome.done + [entry for entry, _ in outcome.dead]
    by_stream = {}
    for entry in settled:
        by_stream.setdefault(entry.stream, []).append(entry.entry_id)
    for stream, ids in by_stream.items():
        pipe.xack(stream, keys.group, *ids)
        pipe.xdel(stream, *ids)
    locks = [keys.lock(e.event_id) for e in settled if e.has_valid_event_id]
    if locks:
        pipe.delete(*locks)
    pipe.execute()


def mark_dead(delivery, reason, *, attempt_failed=False):
    """Record a delivery as failed and tell the customer; the caller commits."""
    delivery.status = FAILED
    delivery.last_error = reason
    delivery.failed_at = now()
    user_id, text = describe_customer_notice(delivery)
    if user_id is not None:
        notify(user_id=user_id, content=text)
    transitions.record(
        transitions.DEAD,
        delivery,
        error=reason,
        attempt_failed=attempt_failed,
    )


class Deliverer:
    """Send the mails of a batch of entries over one SMTP connection."""

    def __init__(self, app, *, consumer, client, should_stop=lambda: False):
        self.app = app
        self.consumer = consumer
        self.client = client
        self.keys = streams.Keys.of(app)
        self.should_stop = should_stop
        self.max_attempts = app.config["MAIL_MAX_ATTEMPTS"]
        self.lock_ms = app.config["MAIL_VISIBILITY_TIMEOUT"] * 1000
        self._set_locks = client.register_script(SET_LOCKS)

    def deliver(self, entries):
        """Handle a batch and settle it in Redis; return the outcome."""
        outcome = Outcome()
        smtp = SmtpSession(self.app)
        try:
            for entry, locked in zip(entries, self._lock(entries), strict=True):
                if self.should_stop():
                    outcome.left.append(entry)
                elif entry.fields is None:
                    outcome.done.append(entry)  # its body is gone; the relay republishes
                elif not entry.has_valid_event_id:
                    reason = f"unreadable entry: {entry.fields!r}"[:500]
                    log.error(
                        "mail entry %s on %s is poison: %s", entry.entry_id, entry.stream, reason
                    )
                    outcome.dead.append((entry, reason))
                elif not locked:
                    outcome.left.append(entry)  # another consumer is sending this event now
                else:
                    self._handle(entry, smtp, outcome)
        finally:
            smtp.close()
        finish(self.client, self.keys, outcome)
        return outcome

    def _lock(self, entries):
        has_key = [e.fields is not None and e.has_valid_event_id for e in entries]
        keys = [self.keys.lock(e.event_id) for e, has in zip(entries, has_key, strict=True) if has]
        # One script call instead of a SET NX PX per entry: same keys, same expiry, one
        # command for Redis to parse and one reply for the client (all keys share a slot).
        taken = self._set_locks(keys=keys, args=[self.consumer, self.lock_ms]) if keys else []
        results = iter(taken)
        return [bool(next(results)) if has else False for has in has_key]

    def _handle(self, entry, smtp, outcome):
        with self.app.app_context():
            try:
                self._handle_in_context(entry, smtp, outcome)
            except (SQLAlchemyError, redis.RedisError) as error:
                # The database or Redis failed, not the mail: look at it again later.
                self._leave(entry, error, outcome)
            except Exception as error:  # noqa: BLE001
                # A bug or data the code cannot handle: a failed attempt like any other, so
                # it ends dead-lettered rather than crashing the worker or looping forever.
                db.session.rollback()
                log.exception("mail event %s failed unexpectedly", entry.event_id)
                try:
                    delivery = db.session.scalar(
                        select(MailDelivery).where(MailDelivery.event_id == entry.event_id)
                    )
                    delivery.attempts += 1
                    self._failed(entry, delivery, error, outcome)
                except (SQLAlchemyError, redis.RedisError) as second:
                    self._leave(entry, second, outcome)

    def _leave(self, entry, error, outcome):
        db.session.rollback()
        log.error("mail event %s left pending: %s", entry.event_id, error)
        outcome.left.append(entry)
        self.client.delete(self.keys.lock(entry.event_id))

    def _handle_in_context(self, entry, smtp, outcome):
        # The appointment and its people come with the row, so rendering reads the
        # session's identity map instead of three more queries; `appointment` is held
        # here because the identity map only keeps weak references.
        query = (
            select(MailDelivery, Appointment)
            .outerjoin(Appointment, Appointment.id == MailDelivery.appointment_id)
            .options(joinedload(Appointment.provider), joinedload(Appointment.user))
            .where(MailDelivery.event_id == entry.event_id)
        )
        delivery, appointment = db.session.execute(query).first() or (None, None)
        if delivery is None:
            outcome.dead.append((entry, "no delivery recorded for this event"))
            log.error("mail event %s has no delivery row; dead-lettered", entry.event_id)
            return
        if delivery.status == SENT:
            log.info("mail event %s already sent; acknowledged without sending", entry.event_id)
            outcome.done.append(entry)
            return
        if delivery.status == FAILED:
            outcome.dead.append((entry, delivery.last_error or "failed"))
            return
        if delivery.attempts >= self.max_attempts or entry.redeliveries >= self.max_attempts:
            self._dead(entry, delivery, delivery.last_error or "too many deliveries", outcome)
            return
        try:
            message = render(delivery)
        except Unrenderable as error:
            self._dead(entry, delivery, str(error), outcome)
            return
        started = time.monotonic()
        delivery.attempts += 1
        try:
            smtp.send(message)
        except Exception as error:  # noqa: BLE001 - every send failure is retried or dead
            self._failed(entry, delivery, error, outcome)
            return
        delivery.status = SENT
        delivery.sent_at = now()
        delivery.last_error = None
        db.session.commit()
        outcome.done.append(entry)
        outcome.sent += 1
        transitions.record(
            transitions.SENT,
            delivery,
            duration=time.monotonic() - started,
            latency=(delivery.sent_at - delivery.created_at).total_seconds(),
        )

    def _failed(self, entry, delivery, error, outcome):
        reason = describe(error)
        delivery.last_error = reason
        if is_permanent(error) or delivery.attempts >= self.max_attempts:
            self._dead(entry, delivery, reason, outcome, attempt_failed=True)
            return
        db.session.commit()
        config = current_app.config
        delay = backoff_seconds(
            delivery.attempts, base=config["MAIL_RETRY_BASE"], cap=config["MAIL_RETRY_MAX"]
        )
        outcome.retry.append((entry, delay))
        self.client.delete(self.keys.lock(entry.event_id))
        transitions.record(
            transitions.RETRIED,
            delivery,
            error=reason,
            attempt_failed=True,
            retry_in_s=round(delay, 2),
        )

    def _dead(self, entry, delivery, reason, outcome, *, attempt_failed=False):
        mark_dead(delivery, reason, attempt_failed=attempt_failed)
        db.session.commit()
        outcome.dead.append((entry, reason))


def requeue(delivery):
    """Put a failed delivery back on its stream with fresh attempts (operator retry)."""
    delivery.status = QUEUED
    delivery.attempts = 0
    delivery.failed_at = None
    return delivery
