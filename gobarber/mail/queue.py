"""The mail queue in Redis: one object owns the consumer group, its streams and every
command on them.

Producers (the outbox), consumers (worker and reaper) and the operator views all go
through `MailQueue`, so no other module speaks a raw stream command, builds a key or
parses a reply. The keys live under one prefix inside one hash tag, so today the whole
pipeline sits on one Redis Cluster slot; spreading it over several would change this
module, not its callers, which only ever hand back the `Entry` objects it gave them.
"""

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

import redis

from gobarber.shop_time import now


class Priority(StrEnum):
    """A stream per priority; a high entry is never left waiting behind default ones."""

    HIGH = "high"
    DEFAULT = "default"


READING_ORDER = (Priority.HIGH, Priority.DEFAULT)

# A canonical UUID (what uuid4() prints): a regex is ten times cheaper than uuid.UUID().
_EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_event_id(value):
    """Tell whether `value` is an event id the outbox could have written."""
    return isinstance(value, str) and _EVENT_ID.fullmatch(value) is not None


@dataclass(frozen=True, eq=False)
class Entry:
    """One stream entry as Redis handed it over; `fields` is None when Redis lost its body.

    Two entries are the same when they have the same stream and id, whatever was read.
    """

    stream: str
    entry_id: str
    fields: dict | None

    def __eq__(self, other):
        if not isinstance(other, Entry):
            return NotImplemented
        return (self.stream, self.entry_id) == (other.stream, other.entry_id)

    def __hash__(self):
        return hash((self.stream, self.entry_id))

    @property
    def event_id(self):
        return (self.fields or {}).get("event_id")

    @property
    def kind(self):
        return (self.fields or {}).get("kind")

    @cached_property
    def is_readable(self):
        """Whether the entry names an event (a UUID); parsed once, as every step asks."""
        return is_event_id(self.event_id)

    @property
    def redeliveries(self):
        """How many times the reaper has put this event back for another consumer."""
        try:
            return int((self.fields or {}).get("redeliveries", 0))
        except ValueError:
            return 0

    @property
    def deliveries(self):
        """How many times the event has been handed to a consumer, this time included."""
        return self.redeliveries + 1


@dataclass(frozen=True)
class Pending:
    """An entry some consumer holds without having acknowledged it."""

    stream: str
    entry_id: str
    consumer: str
    idle_ms: int


def _entries(stream, reply):
    return [Entry(stream, entry_id, fields or None) for entry_id, fields in reply]


# XREADGROUP the streams in priority order and return the first that has entries: one
# round trip, and atomic, so no default entry is taken while a high one waits.
_READ_BY_PRIORITY = """
for _, key in ipairs(KEYS) do
  local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                           'STREAMS', key, '>')
  if reply then return reply end
end
return false
"""

# SET NX PX on every key; returns 1 for each lock taken, 0 for each held by someone else.
_SET_LOCKS = """
local taken = {}
for i, key in ipairs(KEYS) do
  taken[i] = redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
end
return taken
"""


# Move the events whose retry is due back onto their streams: per stream, the due ones
# (at most ARGV[2]) from its sorted set, each XADDed from its hash of fields, atomically,
# so an event is never both waiting and on the stream, nor neither. Returns the moved
# (event id, new entry id) pairs as a flat list, and the earliest due time still waiting.
# KEYS: the stream keys, then their sorted sets in the same order. ARGV: now in ms, the
# count, the prefix of the hash keys.
_RELEASE_DUE = """
local n = #KEYS / 2
local moved, next_due, next_raw = {}, nil, ''
for i = 1, n do
  local stream, due = KEYS[i], KEYS[n + i]
  local events = redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
  for _, event in ipairs(events) do
    local body = redis.call('HGETALL', ARGV[3] .. event)
    if #body > 0 then
      table.insert(moved, event)
      table.insert(moved, redis.call('XADD', stream, '*', unpack(body)))
    end
    redis.call('DEL', ARGV[3] .. event)
    redis.call('ZREM', due, event)
  end
  local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
  if first[2] and (next_due == nil or tonumber(first[2]) < next_due) then
    next_due, next_raw = tonumber(first[2]), first[2]
  end
end
return {moved, next_raw}
"""

# A dead letter keeps the fields of its entry for a person to read, within bounds: an
# entry any producer wrote may be of any size.
DEAD_FIELDS_KEPT = 32
DEAD_FIELD_CHARS = 1024


class MailQueue:
    """The consumer group, a stream per priority, the dead-letter stream and send locks."""

    def __init__(self, connection, *, prefix, group, dead_max=10_000):
        self.redis = connection
        self.prefix = prefix
        self.group = group
        self.dead_max = dead_max
        self._read_by_priority = connection.register_script(_READ_BY_PRIORITY)
        self._set_locks = connection.register_script(_SET_LOCKS)
        self._release_due = connection.register_script(_RELEASE_DUE)
        #: The stream keys in reading order, high first.
        self.stream_keys = [self.stream_key(priority) for priority in READING_ORDER]
        self._reading_order = {key: index for index, key in enumerate(self.stream_keys)}
        self._due_keys = {key: f"{key}:due" for key in self.stream_keys}

    @classmethod
    def from_config(cls, connection, config):
        return cls(
            connection,
            prefix=config["MAIL_STREAM_PREFIX"],
            group=config["MAIL_GROUP"],
            dead_max=config.get("MAIL_DEAD_MAX", 10_000),
        )

    def reconnect(self):
        """Drop the pool's connections (after a failover, the old ones reach a replica)."""
        self.redis.connection_pool.disconnect()

    # ---- keys ----------------------------------------------------------------------

    @property
    def _tag(self):
        return "{" + self.prefix + "}"

    def stream_key(self, priority):
        """Return the key of a priority's stream."""
        return f"{self._tag}:mail:{Priority(priority)}"

    @property
    def dead_key(self):
        """The dead-letter stream."""
        return f"{self._tag}:mail:dead"

    def due_key(self, priority):
        """The sorted set of the priority's events waiting for a retry, by due time."""
        return self._due_keys[self.stream_key(priority)]

    def delayed_key(self, event_id):
        """The hash holding a waiting event's entry fields until it is due."""
        return f"{self._tag}:mail:delayed:{event_id}"

    def lock_key(self, event_id):
        """The key that marks an event as being sent right now."""
        return f"{self._tag}:mail:sending:{event_id}"

    # ---- producing -----------------------------------------------------------------

    def ensure_group(self):
        """Create the consumer group on every stream; one that exists already is fine."""
        for key in self.stream_keys:
            try:
                self.redis.xgroup_create(key, self.group, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    def publish(self, priority, fields):
        """Add an event to its priority's stream; return the entry id."""
        return self.redis.xadd(self.stream_key(priority), fields)

    def schedule(self, priority, fields, due_ms):
        """Keep an event off its stream until `due_ms` (epoch milliseconds), waiting as a
        retry waits, until `release_due` puts it on. Scheduling it again moves its time."""
        body = self.delayed_key(fields["event_id"])
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(body)
        pipe.hset(body, mapping=fields)
        pipe.zadd(self._due_keys[self.stream_key(priority)], {fields["event_id"]: int(due_ms)})
        pipe.execute()

    def still_owed(self, refs):
        """For (priority, entry id, event id) triples, tell which events Redis still holds:
        at that entry of their stream, or waiting for a retry."""
        if not refs:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for priority, entry_id, event_id in refs:
            pipe.xrange(self.stream_key(priority), entry_id, entry_id)
            pipe.exists(self.delayed_key(event_id))
        found = pipe.execute()
        return [bool(found[i] or found[i + 1]) for i in range(0, len(found), 2)]

    # ---- consuming -----------------------------------------------------------------

    def own_pending(self, consumer):
        """Return a reader of what `consumer` left pending before it last stopped."""
        return PendingHistory(self, consumer)

    def read_new(self, consumer, *, count, block_ms):
        """Read entries never delivered, high priority first; block when there are none."""
        waiting = self._read_by_priority(keys=self.stream_keys, args=[self.group, consumer, count])
        if waiting:
            [(key, messages)] = waiting
            # A script's reply is raw: each entry's fields come as a flat list.
            return _entries(
                key, [(i, dict(zip(f[::2], f[1::2], strict=True))) for i, f in messages]
            )
        reply = self.redis.xreadgroup(
            self.group,
            consumer,
            {key: ">" for key in self.stream_keys},
            count=count,
            block=block_ms,
        )
        entries = []
        for key, messages in sorted(reply or [], key=lambda item: self._reading_order[item[0]]):
            entries += _entries(key, messages)
        return entries

    def read_urgent(self, consumer, *, count):
        """Read entries never delivered from the high stream only, without blocking: what
        a worker in the middle of a default batch sends first."""
        reply = self.redis.xreadgroup(
            self.group, consumer, {self.stream_key(Priority.HIGH): ">"}, count=count
        )
        return [entry for key, messages in reply or [] for entry in _entries(key, messages)]

    def claim(self, consumer, held):
        """Take entries (anything with `stream` and `entry_id`) for `consumer`, resetting
        their idle time; return them as read now (deleted ones are left out)."""
        entries = []
        for stream, ids in _by_stream(held).items():
            entries += _entries(stream, self.redis.xclaim(stream, self.group, consumer, 0, ids))
        return entries

    def reclaim_idle(self, consumer, *, min_idle_ms, count):
        """Take every entry idle longer than `min_idle_ms`, a batch at a time.

        Yields (entries, deleted ids) per batch: Redis 7 reports the ids of entries that
        were pending but are gone from the stream; Redis 6.2 returns them with no body.
        """
        for key in self.stream_keys:
            cursor = "0-0"
            while True:
                reply = self.redis.xautoclaim(
                    key, self.group, consumer, min_idle_ms, start_id=cursor, count=count
                )
                cursor, claimed = reply[0], reply[1]
                deleted = reply[2] if len(reply) > 2 else []
                yield _entries(key, claimed), deleted
                if cursor in ("0-0", "0"):
                    break

    def lock(self, owner, entries, ttl_ms):
        """Mark readable entries' events as being sent by `owner`; return those now held.

        One script call for the batch instead of a SET NX PX each (all keys share a slot).
        An event another consumer is sending right now stays out of the result.
        """
        readable = [entry for entry in entries if entry.is_readable]
        if not readable:
            return []
        keys = [self.lock_key(entry.event_id) for entry in readable]
        taken = self._set_locks(keys=keys, args=[owner, ttl_ms])
        return [entry for entry, won in zip(readable, taken, strict=True) if won]

    def settle(self, *, acked=(), dead=(), requeued=(), later=(), unlock=()):
        """Finish with entries in one MULTI/EXEC, and return where requeued events went.

        `acked` are done; `dead` are (entry, reason) pairs copied to the dead-letter
        stream (capped at `dead_max`, roughly); `requeued` go back to the end of their
        stream for any consumer, with their redelivery count raised; `later` are (entry,
        seconds) pairs that wait outside the stream, and outside the pending list, until
        `release_due` puts them back. All of them are then acknowledged and deleted, so a
        stream holds only what is still owed. `unlock` releases those entries' send
        locks. Nothing is acknowledged without its copy. Returns (event id, new entry
        id) pairs for the requeued entries that had a body.
        """
        if not (acked or dead or requeued or later or unlock):
            return []
        now_ms = _now_ms()
        pipe = self.redis.pipeline(transaction=True)
        for entry, reason in dead:
            kept = list((entry.fields or {}).items())[:DEAD_FIELDS_KEPT]
            copy = {name[:100]: value[:DEAD_FIELD_CHARS] for name, value in kept}
            copy.update(
                stream=entry.stream, entry_id=entry.entry_id, error=reason[:500], dead_at=now_ms
            )
            pipe.xadd(self.dead_key, copy, maxlen=self.dead_max, approximate=True)
        moved = [entry for entry in requeued if entry.fields]
        for entry in moved:
            pipe.xadd(entry.stream, {**entry.fields, "redeliveries": str(entry.deliveries)})
        waiting = [(entry, delay) for entry, delay in later if entry.fields and entry.is_readable]
        for entry, delay in waiting:
            body = self.delayed_key(entry.event_id)
            pipe.delete(body)
            pipe.hset(body, mapping=entry.fields)
            pipe.zadd(self._due_keys[entry.stream], {entry.event_id: now_ms + int(delay * 1000)})
        finished = [*acked, *(entry for entry, _ in dead), *requeued, *(e for e, _ in waiting)]
        for stream, ids in _by_stream(finished).items():
            pipe.xack(stream, self.group, *ids)
            pipe.xdel(stream, *ids)
        locks = [self.lock_key(entry.event_id) for entry in unlock if entry.is_readable]
        if locks:
            pipe.delete(*locks)
        results = pipe.execute()
        new_ids = results[len(dead) : len(dead) + len(moved)]
        return [(entry.event_id, new_id) for entry, new_id in zip(moved, new_ids, strict=True)]

    def release_due(self, *, count=100, now_ms=None):
        """Put events whose retry is due back on their streams.

        Returns the (event id, new entry id) pairs moved, and the seconds until the next
        waiting event is due (None when none waits).
        """
        now_ms = _now_ms() if now_ms is None else now_ms
        keys = [*self.stream_keys, *(self._due_keys[key] for key in self.stream_keys)]
        flat, next_due = self._release_due(keys=keys, args=[now_ms, count, self.delayed_key("")])
        pairs = list(zip(flat[::2], flat[1::2], strict=True))
        wait_s = max(0.0, (float(next_due) - now_ms) / 1000) if next_due else None
        return pairs, wait_s

    # ---- operator views and actions ------------------------------------------------

    def state(self):
        """Length, pending, lag, oldest pending age and consumers of each priority stream."""
        return [self._stream_state(priority) for priority in READING_ORDER]

    def _stream_state(self, priority):
        key = self.stream_key(priority)
        state = {
            "priority": str(priority),
            "stream": key,
            "length": self.redis.xlen(key),
            "pending": 0,
            "lag": None,
            "oldest_pending_age_s": None,
            "consumers": [],
            "scheduled": self.redis.zcard(self._due_keys[key]),
        }
        groups = (
            {g["name"]: g for g in self.redis.xinfo_groups(key)} if self.redis.exists(key) else {}
        )
        group = groups.get(self.group)
        if group is None:
            state["lag"] = state["length"]  # no group yet: nothing was delivered
            return state
        state["pending"] = group["pending"]
        state["lag"] = group.get("lag")
        if state["lag"] is None:  # Redis 6.2 does not report lag
            state["lag"] = max(state["length"] - state["pending"], 0)
        summary = self.redis.xpending(key, self.group)
        if summary["pending"]:
            oldest = self.redis.xrange(key, summary["min"], summary["min"])
            born = int(summary["min"].split("-")[0])
            if oldest and oldest[0][1].get("created_at", "").isdigit():
                born = int(oldest[0][1]["created_at"])
            state["oldest_pending_age_s"] = round((_now_ms() - born) / 1000, 1)
        state["consumers"] = [
            {"name": c["name"], "pending": c["pending"], "idle_s": round(c["idle"] / 1000, 1)}
            for c in self.redis.xinfo_consumers(key, self.group)
        ]
        return state

    def dead_count(self):
        """How many entries the dead-letter stream holds."""
        return self.redis.xlen(self.dead_key)

    def dead_letters(self, limit=None):
        """Return dead letters as (dead id, fields), newest first; all of them without `limit`."""
        return self.redis.xrevrange(self.dead_key, count=limit)

    def drop_dead(self, dead_ids):
        """Remove dead letters once they are dealt with."""
        if dead_ids:
            self.redis.xdel(self.dead_key, *dead_ids)

    def held_by(self, consumer, limit=10_000):
        """What `consumer` holds unacknowledged, on every stream, with idle times."""
        held = []
        for key in self.stream_keys:
            if not self.redis.exists(key):
                continue
            names = {c["name"] for c in self.redis.xinfo_consumers(key, self.group)}
            if consumer not in names:
                continue
            rows = self.redis.xpending_range(
                key, self.group, "-", "+", limit, consumername=consumer
            )
            held += [
                Pending(key, row["message_id"], consumer, row["time_since_delivered"])
                for row in rows
            ]
        return held

    def consumer_names(self):
        """Every consumer the group knows, on any stream."""
        names = set()
        for key in self.stream_keys:
            if self.redis.exists(key):
                names |= {c["name"] for c in self.redis.xinfo_consumers(key, self.group)}
        return names

    def remove_consumer(self, consumer):
        """Drop `consumer` from the group on every stream (what it held is dropped too)."""
        for key in self.stream_keys:
            if self.redis.exists(key):
                self.redis.xgroup_delconsumer(key, self.group, consumer)


class PendingHistory:
    """Reads a consumer's own pending entries from the start, a batch at a time."""

    def __init__(self, queue, consumer):
        self.queue = queue
        self.consumer = consumer
        self._cursors = {key: "0" for key in queue.stream_keys}

    @property
    def exhausted(self):
        return not self._cursors

    def read(self, count):
        """Return the next batch of this consumer's pending entries; [] once none are left."""
        if not self._cursors:
            return []
        reply = self.queue.redis.xreadgroup(
            self.queue.group, self.consumer, self._cursors, count=count
        )
        entries = []
        for key, messages in reply or []:
            if messages:
                self._cursors[key] = messages[-1][0]
                entries += _entries(key, messages)
            else:
                del self._cursors[key]
        if not reply:
            self._cursors.clear()
        return entries


def _by_stream(items):
    grouped = {}
    for item in items:
        grouped.setdefault(item.stream, []).append(item.entry_id)
    return grouped


def _now_ms():
    return int(now().timestamp() * 1000)
