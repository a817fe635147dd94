"""Carry out the delivery policy: the worker's sends and the reaper's recoveries.

The order that makes a mail arrive once: send, record the delivery as sent (commit), then
acknowledge. A redelivered entry whose delivery is recorded as sent is acknowledged
unsent, so a duplicate needs a worker to die between the SMTP server's reply and the
commit. What to do with each entry is `DeliveryPolicy`'s decision; this module applies it
to the row, commits, logs the transition, and hands the entries to `MailQueue.settle`.

Telling the customer that a mail failed is a notification, which is the services'
business: the caller passes `notify(user_id=..., content=...)` in.
"""

import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from gobarber import metrics
from gobarber.extensions import db
from gobarber.mail.messages import (
    Unrenderable,
    customer_notice,
    delivered_notice,
    render,
    void_reason,
)
from gobarber.mail.policy import INFRASTRUCTURE, Abandoned, Action, Decision, DeliveryPolicy
from gobarber.mail.smtp import SmtpSession
from gobarber.mail.transitions import Transition, record
from gobarber.models import Appointment, MailDelivery
from gobarber.models.mail_delivery import DeliveryStatus
from gobarber.shop_time import now

log = logging.getLogger(__name__)

# How long before a worker looks again at an entry it could not decide on: another
# consumer was sending the same event, or the database did not answer.
LOOK_AGAIN_S = 5.0
# How often a worker sending a default batch looks for high-priority mail (a password
# reset) that arrived meanwhile, and sends it first: a reset never waits behind a batch
# of cancellations on a slow SMTP server for more than this and one send.
URGENT_CHECK_S = 0.5
URGENT_BATCH = 10


@dataclass
class Outcome:
    """What became of a batch of entries."""

    acked: list = field(default_factory=list)
    dead: list = field(default_factory=list)  # (entry, reason)
    later: list = field(default_factory=list)  # (entry, seconds until it is due again)
    requeued: list = field(default_factory=list)
    left: list = field(default_factory=list)  # still pending for this consumer (stopping)
    sent: int = 0

    def add(self, entry, decision):
        """File `entry` under its decision's action."""
        match decision.action:
            case Action.ACK | Action.VOID:
                self.acked.append(entry)
            case Action.DEAD:
                self.dead.append((entry, decision.reason))
            case Action.RETRY:
                self.later.append((entry, decision.delay))
            case Action.REQUEUE:
                self.requeued.append(entry)
            case Action.LEAVE:
                self.later.append((entry, LOOK_AGAIN_S))


def fail(delivery, reason, *, notify):
    """Record a delivery as failed and tell the customer; the caller commits."""
    delivery.status = DeliveryStatus.FAILED
    delivery.last_error = reason
    delivery.failed_at = now()
    user_id, text = customer_notice(delivery)
    if user_id is not None:
        notify(user_id=user_id, content=text)


def _row_with_people(event_id):
    # The appointment and its people come with the row, so rendering reads the
    # session's identity map instead of three more queries; the caller holds the
    # appointment, because the identity map only keeps weak references.
    query = (
        select(MailDelivery, Appointment)
        .outerjoin(Appointment, Appointment.id == MailDelivery.appointment_id)
        .options(joinedload(Appointment.provider), joinedload(Appointment.user))
        .where(MailDelivery.event_id == event_id)
    )
    return db.session.execute(query).first() or (None, None)


def _row(event_id):
    return db.session.scalar(select(MailDelivery).where(MailDelivery.event_id == event_id))


class Deliverer:
    """Send the mails of a batch of entries over one SMTP connection, as one consumer."""

    def __init__(self, app, *, queue, consumer, notify, should_stop=lambda: False):
        self.app = app
        self.queue = queue
        self.consumer = consumer
        self.notify = notify
        self.should_stop = should_stop
        self.policy = DeliveryPolicy.from_config(app.config)
        self.lock_ms = app.config["MAIL_VISIBILITY_TIMEOUT"] * 1000

    def deliver(self, entries):
        """Handle a batch and settle it in Redis; return the outcome."""
        with metrics.batched():  # the batch's counts, settle included, in one round trip
            return self._deliver(entries)

    def _deliver(self, entries):
        outcome = Outcome()
        # Another consumer may hold the same event (the reaper requeued it while a slow
        # worker was still sending): only the holder of its send lock goes on.
        locked = self.queue.lock(self.consumer, entries, self.lock_ms)
        smtp = SmtpSession(self.app)
        look_for_urgent_at = time.monotonic() + URGENT_CHECK_S
        try:
            for entry in entries:
                if not self.queue.is_high(entry) and time.monotonic() >= look_for_urgent_at:
                    self._send_urgent(smtp, outcome, locked)
                    look_for_urgent_at = time.monotonic() + URGENT_CHECK_S
                self._take(entry, locked, smtp, outcome)
        finally:
            smtp.close()
        self.queue.settle(
            acked=outcome.acked, dead=outcome.dead, later=outcome.later, unlock=locked
        )
        return outcome

    def _take(self, entry, locked, smtp, outcome):
        if self.should_stop():
            outcome.left.append(entry)  # for this name on restart, or the reaper
        elif entry.is_readable and entry not in locked:
            outcome.later.append((entry, LOOK_AGAIN_S))
        else:
            self._handle(entry, smtp, outcome)

    def _send_urgent(self, smtp, outcome, locked):
        """Send the high-priority entries that arrived since the batch was read, first;
        they are settled with the batch."""
        if self.should_stop():
            return
        urgent = self.queue.read_urgent(self.consumer, count=URGENT_BATCH)
        if not urgent:
            return
        locked.extend(self.queue.lock(self.consumer, urgent, self.lock_ms))
        log.info("%d high-priority mail(s) sent ahead of the batch", len(urgent))
        for entry in urgent:
            self._take(entry, locked, smtp, outcome)

    def _handle(self, entry, smtp, outcome):
        with self.app.app_context():
            delivery = None
            try:
                delivery, appointment = (
                    _row_with_people(entry.event_id) if entry.is_readable else (None, None)
                )
                void = void_reason(delivery) if delivery is not None else None
                decision = self.policy.decide(entry, delivery, void=void)
                if decision.action is Action.SEND:
                    decision = self._send(entry, delivery, smtp, outcome)
                elif decision.action is Action.ACK and delivery is not None:
                    log.info("mail event %s already sent; acknowledged unsent", entry.event_id)
                self._carry_out(entry, delivery, decision, outcome)
            except INFRASTRUCTURE as error:
                # The database or Redis failed, not the mail: look at it again later.
                self._carry_out(
                    entry, delivery, self.policy.decide(entry, delivery, error), outcome
                )
            except Exception as error:  # noqa: BLE001
                # A bug or data the code cannot handle: a failed attempt like any other, so
                # it ends dead-lettered rather than crashing the worker or looping forever.
                log.exception("mail event %s failed unexpectedly", entry.event_id)
                self._unexpected(entry, error, outcome)

    def _send(self, entry, delivery, smtp, outcome):
        try:
            message = render(delivery)
        except Unrenderable as error:
            return self.policy.decide(entry, delivery, error)
        started = time.monotonic()
        delivery.attempts += 1
        try:
            smtp.send(message)
        except Exception as error:  # noqa: BLE001 - every send failure is retried or dead
            return self.policy.decide(entry, delivery, error)
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = now()
        delivery.last_error = None
        if delivery.failed_at is not None:
            # An operator put a dead mail back and it went: the customer who was told
            # it failed learns that the provider knows after all.
            user_id, text = delivered_notice(delivery)
            if user_id is not None:
                self.notify(user_id=user_id, content=text)
        db.session.commit()
        outcome.sent += 1
        record(
            Transition.SENT,
            delivery,
            duration=time.monotonic() - started,
            latency=(delivery.sent_at - delivery.created_at).total_seconds(),
        )
        return Decision(Action.ACK)

    def _unexpected(self, entry, error, outcome):
        db.session.rollback()
        try:
            delivery = _row(entry.event_id) if entry.is_readable else None
            if delivery is not None:
                delivery.attempts += 1
            self._carry_out(entry, delivery, self.policy.decide(entry, delivery, error), outcome)
        except INFRASTRUCTURE as second:
            self._carry_out(entry, None, self.policy.decide(entry, None, second), outcome)

    def _carry_out(self, entry, delivery, decision, outcome):
        """Apply a decision to the row, commit, then log the transition."""
        match decision.action:
            case Action.DEAD if decision.fail_row:
                fail(delivery, decision.reason, notify=self.notify)
                db.session.commit()
                record(
                    Transition.DEAD,
                    delivery,
                    error=decision.reason,
                    attempt_failed=decision.attempt_failed,
                )
            case Action.DEAD:
                log.warning(
                    "mail entry %s on %s dead-lettered: %s",
                    entry.entry_id,
                    entry.stream,
                    decision.reason,
                )
            case Action.RETRY:
                delivery.last_error = decision.reason
                db.session.commit()
                record(
                    Transition.RETRIED,
                    delivery,
                    error=decision.reason,
                    attempt_failed=decision.attempt_failed,
                    retry_in_s=round(decision.delay, 2),
                )
            case Action.VOID:
                delivery.status = DeliveryStatus.CANCELED
                delivery.last_error = decision.reason
                db.session.commit()
                log.info("mail event %s not sent: %s", entry.event_id, decision.reason)
            case Action.LEAVE:
                db.session.rollback()
                log.error(
                    "mail event %s put aside for %.0fs: %s",
                    entry.event_id,
                    LOOK_AGAIN_S,
                    decision.reason,
                )
        outcome.add(entry, decision)


class Recovery:
    """Decide, for entries the reaper took from silent consumers, what becomes of them."""

    def __init__(self, app, *, queue, notify):
        self.queue = queue
        self.notify = notify
        self.policy = DeliveryPolicy.from_config(app.config)

    def recover(self, entries):
        """Acknowledge, dead-letter or requeue reclaimed entries; return where requeued
        events now sit, as (event id, entry id) pairs, for the caller to record.

        Runs in an app context. Reads the rows as plain columns (thousands at a time),
        loads an ORM row only for a delivery that must be recorded as failed.
        """
        with metrics.batched():
            return self._recover(entries)

    def _recover(self, entries):
        rows = self._rows([entry.event_id for entry in entries if entry.is_readable])
        outcome, failing = Outcome(), []
        for entry in entries:
            decision = self.policy.decide(entry, rows.get(entry.event_id), Abandoned())
            outcome.add(entry, decision)
            if decision.action is Action.DEAD and decision.fail_row:
                delivery = _row(entry.event_id)
                fail(delivery, decision.reason, notify=self.notify)
                failing.append((delivery, decision.reason))
        db.session.commit()
        for delivery, reason in failing:
            record(Transition.DEAD, delivery, error=reason)
        moved = self.queue.settle(acked=outcome.acked, dead=outcome.dead, requeued=outcome.requeued)
        for event_id, new_id in moved:
            log.info(
                "mail event %s reclaimed from a silent consumer; requeued as %s", event_id, new_id
            )
        return moved

    def _rows(self, event_ids):
        if not event_ids:
            return {}
        query = select(
            MailDelivery.event_id,
            MailDelivery.status,
            MailDelivery.attempts,
            MailDelivery.last_error,
        ).where(MailDelivery.event_id.in_(event_ids))
        return {row.event_id: row for row in db.session.execute(query)}
