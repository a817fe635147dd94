"""One log line, and one metrics tick, per mail event transition, after its commit."""

import logging
from enum import StrEnum

from gobarber.mail import metrics

log = logging.getLogger("gobarber.mail")


class Transition(StrEnum):
    """What just happened to a mail event (not the delivery row's status)."""

    QUEUED = "queued"
    SENT = "sent"
    RETRIED = "retried"
    DEAD = "dead"


def record(
    state, delivery, *, duration=None, error=None, attempt_failed=False, latency=None, **extra
):
    """Log a transition of a delivery's event (id, kind, attempt, duration) and count it.

    Call it once the change is committed: a line must never tell of a state the
    database does not hold.
    """
    state = Transition(state)
    kind = delivery.kind
    details = {"event_id": delivery.event_id, "kind": kind, "attempt": delivery.attempts}
    if duration is not None:
        details["duration_ms"] = round(duration * 1000, 1)
    if latency is not None:
        details["since_cancel_ms"] = round(latency * 1000, 1)
    if error is not None:
        details["error"] = error
    details.update(extra)
    level = logging.WARNING if state in (Transition.RETRIED, Transition.DEAD) else logging.INFO
    text = " ".join(f"{key}={value}" for key, value in details.items() if value is not None)
    log.log(level, "mail %s %s", state, text, extra={"mail": {"state": str(state), **details}})
    metrics.count_transition(state, kind, attempt_failed=attempt_failed, latency=latency)
