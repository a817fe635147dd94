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

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from gobarber import metrics
from gobarber.database import commit_without_waiting_for_disk
from gobarber.extensions import db
from gobarber.mail.messages import (
    Unrenderable,
    customer_notice,
    delivered_notice,
    provider_notice,
    render,
    void_reason,
)
from gobarber.mail.policy import ACK, INFRASTRUCTURE, Abandoned, Action, DeliveryPolicy
from gobarber.mail.senders import Job, Senders
from gobarber.mail.smtp import Outgoing
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
# How long one pass keeps taking in more entries while sends are in flight; then it lets
# the sessions empty, settles, and returns to the worker (heartbeat, due retries).
INTAKE_S = 2.0
# How long it waits before looking again when a look for more found the streams empty.
EMPTY_LOOK_S = 0.05


@dataclass
class Outcome:
    """What became of a batch of entries."""

    acked: list = field(default_factory=list)
    dead: list = field(default_factory=list)  # (entry, reason)
    later: list = field(default_factory=list)  # (entry, seconds until it is due again)
    requeued: list = field(default_factory=list)
    left: list = field(default_factory=list)  # still pending for this consumer (stopping)
    sent: int = 0

    @property
    def entries(self):
        """Every entry settled, whatever became of it."""
        return [
            *self.acked,
            *(entry for entry, _ in self.dead),
            *(entry for entry, _ in self.later),
            *self.requeued,
            *self.left,
        ]

    def merge(self, other):
        """Add `other`'s entries and sends to this outcome."""
        for name in ("acked", "dead", "later", "requeued", "left"):
            getattr(self, name).extend(getattr(other, name))
        self.sent += other.sent

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
    """Record a delivery as failed and tell the customer, and the provider in-app; the
    caller commits."""
    delivery.status = DeliveryStatus.FAILED
    delivery.last_error = reason
    delivery.failed_at = now()
    for user_id, text in (customer_notice(delivery), provider_notice(delivery)):
        if user_id is not None:
            notify(user_id=user_id, content=text)


# A batch's delivery rows with their appointments and both people (built once: the
# loader options cost more to build than the query takes to run).
_ROWS_WITH_PEOPLE = (
    select(MailDelivery, Appointment)
    .outerjoin(Appointment, Appointment.id == MailDelivery.appointment_id)
    .options(joinedload(Appointment.provider), joinedload(Appointment.user))
)


def _row(event_id):
    return db.session.scalar(select(MailDelivery).where(MailDelivery.event_id == event_id))


class Deliverer:
    """Send the mails of a batch of entries as one consumer, over `MAIL_CONCURRENCY` SMTP
    sessions at once.

    This thread does the bookkeeping: it locks the batch's events, reads their rows with
    the appointments and people in one query, decides and renders in one app context,
    and hands the mails to the senders (`senders.Senders`). As they come back it records
    the sent ones several to a statement, commits, and only then settles their entries.
    While sends are in flight it takes in more entries (`more`), so the sessions never
    wait on a batch boundary.
    """

    def __init__(self, app, *, queue, consumer, notify, should_stop=lambda: False):
        self.app = app
        self.queue = queue
        self.consumer = consumer
        self.notify = notify
        self.should_stop = should_stop
        self.policy = DeliveryPolicy.from_config(app.config)
        self.lock_ms = app.config["MAIL_VISIBILITY_TIMEOUT"] * 1000
        self.batch = app.config["MAIL_BATCH_SIZE"]
        self.senders = Senders(app, app.config["MAIL_CONCURRENCY"], should_stop=should_stop)
        self._sending = {}  # event id -> its Job: handed to the senders, not yet settled
        self._locked = set()  # entries whose send lock this consumer holds

    def deliver(self, entries, more=None):
        """Handle `entries` and settle them in Redis; return the outcome.

        `more(count)` (optional) reads further entries without waiting: it is called while
        sends are in flight and a session is about to be free, for INTAKE_S, so a long
        backlog flows through the sessions without a pause at each batch. Everything taken
        in is sent and settled before this returns.
        """
        with metrics.batched():  # the counts, settling included, in one round trip
            outcome = Outcome()
            try:
                self._take_in(entries, outcome)
                self._until_sent(outcome, more)
            except Exception:
                # Redis or the database failed on the way: record what the SMTP server
                # accepts meanwhile, then let the consumer's loop back off.
                self._record_quietly()
                raise
            return outcome

    def close(self):
        """Leave unsent what no session took yet; the sessions end once idle."""
        for job in self.senders.take_unstarted():
            self._sending.pop(job.entry.event_id, None)

    def _until_sent(self, outcome, more):
        intake_ends = time.monotonic() + INTAKE_S
        look_for_urgent_at = time.monotonic() + URGENT_CHECK_S
        look_for_more_at = 0.0
        while self._sending or self._refill(outcome, more, intake_ends):
            if not self._sending:
                continue  # what was taken in needed no send: look for more
            wait = URGENT_CHECK_S
            if self.should_stop():
                self._leave_unstarted(outcome)
            elif more is not None and self._room() and time.monotonic() < intake_ends:
                if time.monotonic() >= look_for_more_at:
                    taken = more(self.batch)
                    self._take_in(taken, outcome)
                    if not taken:  # the streams are empty: look again a little later
                        look_for_more_at = time.monotonic() + EMPTY_LOOK_S
                    elif self._room():
                        wait = 0  # take in more before waiting on a send
                wait = min(wait, max(0.0, look_for_more_at - time.monotonic()))
            if time.monotonic() >= look_for_urgent_at:
                if any(not job.urgent for job in self._sending.values()):
                    self._take_in(self._urgent(), outcome)
                look_for_urgent_at = time.monotonic() + URGENT_CHECK_S
            self._collect(outcome, timeout=wait)

    def _refill(self, outcome, more, intake_ends):
        """Nothing in flight: take in more while the pass may, so that the senders
        finishing everything before this thread looked again does not end the pass with
        entries waiting. Whether anything was taken in."""
        if more is None or self.should_stop() or time.monotonic() >= intake_ends:
            return False
        taken = more(self.batch)
        self._take_in(taken, outcome)
        return bool(taken)

    def _room(self):
        """Whether to take in more: fewer than two sessions' worth of mails in hand, so
        no session idles while this thread reads and renders the next ones."""
        return len(self._sending) < 2 * self.senders.size

    def _urgent(self):
        """High-priority entries that arrived meanwhile; the senders take them first."""
        urgent = self.queue.read_urgent(self.consumer, count=URGENT_BATCH)
        if urgent:
            log.info("%d high-priority mail(s) sent ahead of the batch", len(urgent))
        return urgent

    def _take_in(self, entries, outcome):
        """Decide on `entries`: hand the mails owed to the senders, settle the rest."""
        if not entries:
            return
        # Read with `lock_ms`, most entries come locked already; the rest are locked now.
        self._locked.update(entry for entry in entries if entry.locked)
        unlocked = [entry for entry in entries if not entry.locked]
        self._locked.update(self.queue.lock(self.consumer, unlocked, self.lock_ms))
        settled = Outcome()
        with self.app.app_context():
            rows = self._rows([entry for entry in entries if entry in self._locked], settled)
            for entry in entries if rows is not None else ():
                if self.should_stop():
                    settled.left.append(entry)  # for this name on restart, or the reaper
                elif entry.is_readable and entry not in self._locked:
                    settled.later.append((entry, LOOK_AGAIN_S))
                elif entry.event_id in self._sending:
                    self._set_aside_second(entry, settled)
                else:
                    self._handle(entry, rows, settled)
        self._settle(settled, outcome)

    def _rows(self, entries, settled):
        """The entries' delivery rows with their appointments and people, by event id;
        None when the database did not answer, every entry of the batch then put aside.

        One query for the batch, so rendering reads the session's identity map instead
        of three more queries a mail; the appointments are kept in the result, because
        the identity map only keeps weak references.
        """
        event_ids = [entry.event_id for entry in entries if entry.is_readable]
        if not event_ids:
            return {}
        query = _ROWS_WITH_PEOPLE.where(MailDelivery.event_id.in_(event_ids))
        try:
            return {
                row.event_id: (row, appointment) for row, appointment in db.session.execute(query)
            }
        except INFRASTRUCTURE as error:
            db.session.rollback()
            for entry in entries:
                self._carry_out(entry, None, self.policy.decide(entry, None, error), settled)
            return None

    def _set_aside_second(self, entry, outcome):
        """A second entry of an event this consumer is sending right now (the relay put it
        on the stream again): the send lock is ours for both, so only this keeps it from
        going twice. It is looked at again once the first is recorded, and settling it
        must not release the lock the first one still needs."""
        self._locked.discard(entry)
        log.info(
            "mail event %s: entry %s arrived while the event is being sent; looked at again "
            "in %.0fs",
            entry.event_id,
            entry.entry_id,
            LOOK_AGAIN_S,
        )
        outcome.later.append((entry, LOOK_AGAIN_S))

    def _handle(self, entry, rows, outcome):
        delivery = None
        try:
            delivery, _ = rows.get(entry.event_id, (None, None))
            void = void_reason(delivery) if delivery is not None else None
            decision = self.policy.decide(entry, delivery, void=void)
            if decision.action is Action.SEND:
                try:
                    message = Outgoing.of(render(delivery))
                except Unrenderable as error:
                    decision = self.policy.decide(entry, delivery, error)
                else:
                    job = Job(entry, delivery.id, message, urgent=self.queue.is_high(entry))
                    self._sending[entry.event_id] = job
                    self.senders.submit(job)
                    return
            elif decision.action is Action.ACK and delivery is not None:
                log.info("mail event %s already sent; acknowledged unsent", entry.event_id)
            self._carry_out(entry, delivery, decision, outcome)
        except INFRASTRUCTURE as error:
            # The database or Redis failed, not the mail: look at it again later.
            db.session.rollback()
            self._carry_out(entry, delivery, self.policy.decide(entry, delivery, error), outcome)
        except Exception as error:  # noqa: BLE001
            # A bug or data the code cannot handle: a failed attempt like any other, so
            # it ends dead-lettered rather than crashing the worker or looping forever.
            log.exception("mail event %s failed unexpectedly", entry.event_id)
            self._unexpected(entry, error, outcome)

    def _collect(self, outcome, timeout):
        """Record and settle the sends that came back within `timeout` seconds."""
        jobs = self.senders.finished(timeout)
        if not jobs:
            return
        for job in jobs:
            self._sending.pop(job.entry.event_id, None)
        settled = Outcome(left=[job.entry for job in jobs if job.unsent])
        with self.app.app_context():
            sent = [job for job in jobs if job.error is None and not job.unsent]
            self._record_sent(sent, settled)
            for job in jobs:
                if job.error is not None:
                    self._record_failure(job, settled)
        self._settle(settled, outcome)

    def _record_sent(self, jobs, outcome):
        """Mark the rows of mails the SMTP server accepted as sent: one statement and one
        commit for all of them, then acknowledge.

        The commit does not wait for the disk (see design.md, "What a sent mark costs"):
        a database crash may lose the last marks, whose entries are acknowledged by then;
        the relay finds those rows still queued and publishes them again, so the loss
        costs a second copy of a mail, never a mail.
        """
        if not jobs:
            return
        stamp = now()
        try:
            table = MailDelivery.__table__  # a Core statement: no ORM bookkeeping
            marked = db.session.execute(
                update(table)
                .where(table.c.id.in_([job.delivery_id for job in jobs]))
                .values(
                    status=DeliveryStatus.SENT,
                    sent_at=stamp,
                    last_error=None,
                    attempts=table.c.attempts + 1,
                )
                .returning(
                    table.c.id,
                    table.c.event_id,
                    table.c.kind,
                    table.c.attempts,
                    table.c.created_at,
                    table.c.failed_at,
                )
            ).all()
            for row in marked:
                if row.failed_at is not None:
                    # An operator put a dead mail back and it went: the customer who was
                    # told it failed learns that the provider knows after all.
                    user_id, text = delivered_notice(db.session.get(MailDelivery, row.id))
                    if user_id is not None:
                        self.notify(user_id=user_id, content=text)
            commit_without_waiting_for_disk()
        except INFRASTRUCTURE as error:
            # Sent, but not recorded: looked at again later, when the row says queued the
            # mail goes a second time (as when a worker dies between send and record).
            db.session.rollback()
            for job in jobs:
                decision = self.policy.decide(job.entry, None, error)
                self._carry_out(job.entry, None, decision, outcome)
            return
        rows = {row.id: row for row in marked}
        for job in jobs:
            row = rows.get(job.delivery_id)
            if row is not None:
                record(
                    Transition.SENT,
                    row,
                    duration=job.duration,
                    latency=(stamp - row.created_at).total_seconds(),
                )
            outcome.sent += 1
            outcome.add(job.entry, ACK)

    def _record_failure(self, job, outcome):
        entry = job.entry
        try:
            delivery = _row(entry.event_id)
            if delivery is None:
                decision = self.policy.decide(entry, None)
            else:
                delivery.attempts += 1
                decision = self.policy.decide(entry, delivery, job.error)
            self._carry_out(entry, delivery, decision, outcome)
        except INFRASTRUCTURE as error:
            db.session.rollback()
            self._carry_out(entry, None, self.policy.decide(entry, None, error), outcome)

    def _record_quietly(self):
        """On the way out after an error: wait for the sends in flight and record the
        accepted ones, so that re-reading their entries does not send them twice. Their
        entries stay pending for this consumer, which reads them again first."""
        self._leave_unstarted(Outcome())
        deadline = time.monotonic() + self.app.config["MAIL_TIMEOUT"] + 1
        while self._sending and time.monotonic() < deadline:
            jobs = self.senders.finished(timeout=URGENT_CHECK_S)
            for job in jobs:
                self._sending.pop(job.entry.event_id, None)
            sent = [job for job in jobs if job.error is None and not job.unsent]
            if not sent:
                continue
            try:
                with self.app.app_context():
                    self._record_sent(sent, Outcome())
            except Exception:  # noqa: BLE001 - already on the way out with an error
                log.exception("could not record %d sent mail(s)", len(sent))
        self._sending.clear()
        self._locked.clear()

    def _leave_unstarted(self, outcome):
        """Stopping: what no session took yet stays pending for this consumer, unsent."""
        left = self.senders.take_unstarted()
        for job in left:
            self._sending.pop(job.entry.event_id, None)
        if left:
            settled = Outcome(left=[job.entry for job in left])
            self._settle(settled, outcome)

    def _settle(self, settled, outcome):
        """Settle in Redis what was decided, releasing those entries' send locks."""
        done = [entry for entry in settled.entries if entry in self._locked]
        self.queue.settle(acked=settled.acked, dead=settled.dead, later=settled.later, unlock=done)
        self._locked.difference_update(done)
        outcome.merge(settled)

    def _unexpected(self, entry, error, outcome):
        db.session.rollback()
        try:
            delivery = _row(entry.event_id) if entry.is_readable else None
            if delivery is not None:
                delivery.attempts += 1
            self._carry_out(entry, delivery, self.policy.decide(entry, delivery, error), outcome)
        except INFRASTRUCTURE as second:
            db.session.rollback()
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
