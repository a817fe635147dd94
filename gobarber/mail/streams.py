"""Stream keys, entry fields and the calls that put entries on the streams.

The producer (the web app and the reaper's relay) and the consumers (worker, reaper,
operator commands) all go through this module, so they cannot drift apart.
"""

import time

import redis
from flask import current_app

from gobarber.extensions import redis_client

HIGH = "high"
DEFAULT = "default"
PRIORITIES = (HIGH, DEFAULT)  # read in this order: a high entry never waits behind default

# Every field of an entry is a flat string; the worker re-reads the rest from the database.
FIELDS = ("event_id", "kind", "appointment_id", "created_at")


def _prefix():
    # One hash tag for every key, so the pipeline lives on one Redis Cluster slot.
    return "{" + current_app.config["MAIL_STREAM_PREFIX"] + "}"


def stream_key(priority):
    """Return the key of a priority's stream."""
    return f"{_prefix()}:mail:{priority}"


def dead_letter_key():
    """Return the key of the dead-letter stream."""
    return f"{_prefix()}:mail:dead"


def lock_key(event_id):
    """Return the key that marks an event as being sent right now."""
    return f"{_prefix()}:mail:sending:{event_id}"


def group_name():
    """Return the consumer group's name."""
    return current_app.config["MAIL_GROUP"]


def entry_fields(delivery):
    """Return the stream fields of a delivery's event."""
    return {
        "event_id": delivery.event_id,
        "kind": delivery.kind,
        "appointment_id": str(delivery.appointment_id or ""),
        "created_at": str(int(delivery.created_at.timestamp() * 1000)),
    }


def ensure_groups(client=None):
    """Create the consumer group on every stream; one that exists already is fine."""
    client = client or redis_client.client
    for priority in PRIORITIES:
        try:
            client.xgroup_create(stream_key(priority), group_name(), id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise


def add(delivery, client=None):
    """XADD a delivery's event to its priority stream; return the entry id."""
    client = client or redis_client.client
    return client.xadd(stream_key(delivery.priority), entry_fields(delivery))


def now_ms():
    """Return the wall clock in milliseconds, as stream ids count it."""
    return int(time.time() * 1000)
