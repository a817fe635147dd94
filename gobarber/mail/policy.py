"""What to do with a stream entry: the delivery policy, written once, for worker and reaper.

`DeliveryPolicy.decide(entry, row, error)` is a pure function of the entry (its event id,
how often it was handed out), the delivery row (status, attempts, last error) and what
just went wrong, if anything. It touches neither Redis nor the database; the worker and
the reaper carry out its decision.

The limit `MAIL_MAX_ATTEMPTS` bounds two counts. SMTP attempts are counted on the row.
Deliveries (times the event was handed to a consumer) travel in the entry, because a
consumer that dies mid-send never gets to count its attempt: an event handed out that
many times without a result is dead-lettered rather than handed out again.
"""

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.exc import SQLAlchemyError

from gobarber.backoff import compute_backoff
from gobarber.mail.messages import Unrenderable
from gobarber.mail.smtp import error_text, is_permanent
from gobarber.models.mail_delivery import DeliveryStatus
from gobarber.redis_connection import REDIS_ERRORS


class Action(StrEnum):
    SEND = "send"  # go ahead and send it
    ACK = "ack"  # nothing is owed: acknowledge and delete the entry
    DEAD = "dead"  # copy it to the dead-letter stream with a reason, then acknowledge
    RETRY = "retry"  # keep it pending; this consumer tries again after `delay`
    REQUEUE = "requeue"  # put it back at the end of its stream for any consumer
    LEAVE = "leave"  # not decidable now (the database or Redis failed): look again soon
    VOID = "void"  # no longer owed (its appointment cancelled, its token used): never send


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str | None = None
    delay: float | None = None
    fail_row: bool = False  # the row must be recorded as failed and the customer told
    attempt_failed: bool = False  # an SMTP attempt (or the handling of one) failed


class Abandoned(Exception):
    """The consumer that held the entry went silent past the visibility timeout."""


INFRASTRUCTURE = (SQLAlchemyError, *REDIS_ERRORS)

# Retry delays vary by up to a fifth at random: enough to spread mails that failed
# together, little enough that MAIL_MAX_ATTEMPTS attempts span a known time.
RETRY_JITTER = 0.2

SEND = Decision(Action.SEND)
ACK = Decision(Action.ACK)
REQUEUE = Decision(Action.REQUEUE)


def _dead(reason, *, fail_row=False, attempt_failed=False):
    return Decision(Action.DEAD, reason[:500], fail_row=fail_row, attempt_failed=attempt_failed)


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int
    retry_base: float
    retry_max: float

    @classmethod
    def from_config(cls, config):
        return cls(
            max_attempts=config["MAIL_MAX_ATTEMPTS"],
            retry_base=config["MAIL_RETRY_BASE"],
            retry_max=config["MAIL_RETRY_MAX"],
        )

    def retry_delay(self, attempts):
        """Seconds before the next SMTP attempt, after `attempts` failed ones."""
        return compute_backoff(
            attempts, base=self.retry_base, cap=self.retry_max, jitter=RETRY_JITTER
        )

    def decide(self, entry, row, error=None, *, void=None):
        """Decide what becomes of `entry`, given its delivery `row` (None if there is none)
        and `error`: None before sending, `Abandoned` when the reaper took it from a
        silent consumer, or what the send (or its handling) raised, the row's attempts
        already counting that try. `void`: why the mail is no longer owed, if it is not
        (`messages.void_reason`)."""
        if entry.fields is None:
            return ACK  # Redis lost the body; the outbox relay publishes the row again
        if not entry.is_readable:
            return _dead(f"unreadable entry: {entry.fields!r}")
        if isinstance(error, INFRASTRUCTURE):
            return Decision(Action.LEAVE, error_text(error))
        if row is None:
            return _dead("no delivery recorded for this event")
        if row.status == DeliveryStatus.SENT:
            return ACK
        if row.status in (DeliveryStatus.HELD, DeliveryStatus.CANCELED):
            # Held: not owed until an operator releases it, which publishes it anew.
            return ACK
        if row.status == DeliveryStatus.FAILED:
            return _dead(row.last_error or "failed")
        if error is None and void is not None:
            return Decision(Action.VOID, void)
        if error is None:
            return self._before_sending(entry, row)
        if isinstance(error, Abandoned):
            return self._abandoned(entry, row)
        return self._after_failure(row, error)

    def _before_sending(self, entry, row):
        if row.attempts >= self.max_attempts or entry.deliveries > self.max_attempts:
            return _dead(row.last_error or "too many deliveries", fail_row=True)
        return SEND

    def _abandoned(self, entry, row):
        # Handing it out again would be delivery number `deliveries + 1`.
        if row.attempts >= self.max_attempts or entry.deliveries >= self.max_attempts:
            reason = row.last_error or f"gave up after {entry.deliveries} deliveries"
            return _dead(reason, fail_row=True)
        return REQUEUE

    def _after_failure(self, row, error):
        if isinstance(error, Unrenderable):
            return _dead(str(error), fail_row=True)  # nothing was sent; no attempt failed
        reason = error_text(error)
        if is_permanent(error) or row.attempts >= self.max_attempts:
            return _dead(reason, fail_row=True, attempt_failed=True)
        delay = self.retry_delay(row.attempts)
        return Decision(Action.RETRY, reason, delay=delay, attempt_failed=True)
