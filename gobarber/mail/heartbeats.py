"""Mail worker heartbeats: a Redis key per worker that expires unless the worker refreshes it.

`{PREFIX}:mail:workers:<name>` holds the time of the worker's last beat. The worker beats
at the start of a pass, at most every `MAIL_HEARTBEAT_INTERVAL` seconds, so the longest
gap between two beats is one interval plus the longest healthy pass: one blocking read
(`MAIL_BLOCK_MS`), then a batch, which must be settled within `MAIL_VISIBILITY_TIMEOUT`
(its send locks expire then, and the reaper takes its entries). A key outlives its beat
by that gap, and by never less than three intervals, so a worker busy on a long batch
does not look dead. A clean stop deletes the key; a killed worker's key expires.

`{PREFIX}:mail:workers` indexes the names by their last beat, so listing the live workers
reads two keys instead of scanning the keyspace. All the keys share the queue's hash tag.
"""

import logging
import time

from gobarber.extensions import redis_store
from gobarber.redis_connection import REDIS_ERRORS

log = logging.getLogger(__name__)

# A name that has not beaten for this long leaves the index; its key expired long ago.
FORGET_AFTER_S = 86_400


def heartbeat_ttl_s(config):
    """Seconds a heartbeat lives: one interval and the longest healthy pass, or 3 intervals."""
    interval = config["MAIL_HEARTBEAT_INTERVAL"]
    longest_pass = config["MAIL_BLOCK_MS"] / 1000 + config["MAIL_VISIBILITY_TIMEOUT"]
    return max(interval + longest_pass, 3 * interval)


class Heartbeats:
    """The mail workers' heartbeats: write one, drop one, list the live workers."""

    def __init__(self, app):
        self.redis = redis_store.get(app)
        self.interval = app.config["MAIL_HEARTBEAT_INTERVAL"]
        self.ttl_ms = int(heartbeat_ttl_s(app.config) * 1000)
        self.index_key = "{" + app.config["MAIL_STREAM_PREFIX"] + "}:mail:workers"
        self._last_beat = {}  # name -> monotonic time of its last written beat

    def key(self, name):
        """Return the heartbeat key of the worker `name`."""
        return f"{self.index_key}:{name}"

    def beat(self, name):
        """Say `name` is alive, unless it did less than an interval ago; True when written."""
        current = time.monotonic()
        last = self._last_beat.get(name)
        if last is not None and current - last < self.interval:
            return False
        wall = time.time()
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.key(name), f"{wall:.3f}", px=self.ttl_ms)
        pipe.zadd(self.index_key, {name: wall})
        pipe.zremrangebyscore(self.index_key, "-inf", wall - FORGET_AFTER_S)
        try:
            pipe.execute()
        except REDIS_ERRORS as error:
            # The worker's own pass meets the same outage and backs off; the next pass beats.
            log.debug("heartbeat of %s skipped: %s", name, error)
            return False
        self._last_beat[name] = current
        return True

    def stop(self, name):
        """Drop `name`'s heartbeat: a worker that stops cleanly is not alive any more."""
        self._last_beat.pop(name, None)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.key(name))
        pipe.zrem(self.index_key, name)
        try:
            pipe.execute()
        except REDIS_ERRORS as error:
            log.info("heartbeat of %s left to expire: %s", name, error)

    def alive(self):
        """Return the sorted names of the workers whose heartbeat has not expired."""
        names = self.redis.zrange(self.index_key, 0, -1)
        if not names:
            return []
        beats = self.redis.mget([self.key(name) for name in names])
        return sorted(name for name, beat in zip(names, beats, strict=True) if beat is not None)
