"""Stream keys, entry fields and the calls that put entries on the streams.

The producer (the web app and the reaper's relay) and the consumers (worker, reaper,
operator commands) all go through this module, so they cannot drift apart.
"""

import time
from dataclasses import dataclass

import redis
from flask import current_app

HIGH = "high"
DEFAULT = "default"
PRIORITIES = (HIGH, DEFAULT)  # read in this order: a high entry never waits behind default


@dataclass(frozen=True)
class Keys:
    """Every Redis key of the pipeline, under one prefix inside one hash tag, so the
    whole pipeline lives on one Redis Cluster slot."""

    prefix: str
    group: str

    @classmethod
    def of(cls, app=None):
        config = (app or current_app).config
        return cls(prefix=config["MAIL_STREAM_PREFIX"], group=config["MAIL_GROUP"])

    @property
    def _tag(self):
        return "{" + self.prefix + "}"

    def stream(self, priority):
        """Return the key of a priority's stream."""
        return f"{self._tag}:mail:{priority}"

    @property
    def streams(self):
        """The stream keys in reading order, high first."""
        return [self.stream(priority) for priority in PRIORITIES]

    @property
    def dead(self):
        """The dead-letter stream."""
        return f"{self._tag}:mail:dead"

    def lock(self, event_id):
        """The key that marks an event as being sent right now."""
        return f"{self._tag}:mail:sending:{event_id}"


# XREADGROUP the streams in priority order and return the first that has entries: one
# round trip, and atomic, so no default entry is taken while a high one waits.
READ_BY_PRIORITY = """
for _, key in ipairs(KEYS) do
  local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                           'STREAMS', key, '>')
  if reply then return reply end
end
return false
"""


def entry_fields(delivery):
    """Return the stream fields of a delivery's event: flat strings, ids to re-read."""
    return {
        "event_id": delivery.event_id,
        "kind": delivery.kind,
        "appointment_id": str(delivery.appointment_id or ""),
        "created_at": str(int(delivery.created_at.timestamp() * 1000)),
    }


def ensure_groups(client, keys):
    """Create the consumer group on every stream; one that exists already is fine."""
    for stream in keys.streams:
        try:
            client.xgroup_create(stream, keys.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise


def add(client, keys, delivery):
    """XADD a delivery's event to its priority stream; return the entry id."""
    return client.xadd(keys.stream(delivery.priority), entry_fields(delivery))


def now_ms():
    """Return the wall clock in milliseconds, as stream ids count it."""
    return int(time.time() * 1000)
