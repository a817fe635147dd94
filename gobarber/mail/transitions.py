"""One log line (and, with metrics on, one counter tick) per mail event transition."""

import logging

log = logging.getLogger("gobarber.mail")

QUEUED = "queued"
SENT = "sent"
RETRIED = "retried"
DEAD = "dead"

_listeners = []


def on_transition(listener):
    """Call `listener(state, kind, **details)` on every transition (metrics hook in)."""
    _listeners.append(listener)
    return listener


def record(state, *, event_id, kind, attempt=None, duration=None, error=None, **extra):
    """Log a transition of a mail event, with its id, kind, attempt and duration."""
    details = {"event_id": event_id, "kind": kind, "attempt": attempt}
    if duration is not None:
        details["duration_ms"] = round(duration * 1000, 1)
    if error is not None:
        details["error"] = error
    details.update(extra)
    level = logging.WARNING if state in (RETRIED, DEAD) else logging.INFO
    text = " ".join(f"{key}={value}" for key, value in details.items() if value is not None)
    log.log(level, "mail %s %s", state, text, extra={"mail": {"state": state, **details}})
    for listener in _listeners:
        listener(state, kind, **details)
