"""The mail queue in Redis: one object owns the consumer group, its streams and every
command on them.

Producers (the outbox), consumers (worker and reaper) and the operator views all go
through `MailQueue`, so no other module speaks a raw stream command, builds a key or
parses a reply. Callers only ever hand back the `Entry` objects it gave them.

The queue is split into `MAIL_STREAM_SHARDS` shards. Each has a hash tag of its own
(`{PREFIX}` for shard 0, so one shard keeps the keys of the unsharded queue, then
`{PREFIX:1}`, `{PREFIX:2}`...) and under it its own priority streams, consumer group,
dead letters, send locks and schedule, so every script and every MULTI touches one
Redis Cluster slot, and a cluster spreads the shards over its masters. An event's shard
is a hash of its event id; the outbox row records it.
"""

import logging
import re
import time
import zlib
from dataclasses import dataclass, field
from enum import StrEnum

import redis

from gobarber.backoff import compute_backoff
from gobarber.redis_connection import REDIS_ERRORS, reconnect
from gobarber.shop_time import now

log = logging.getLogger(__name__)

# A shard whose commands fail while other shards answer (its slot migrating, its master
# failing over) is left alone for a while, doubling, so the others keep flowing.
SHARD_PAUSE_BASE_S = 0.2
SHARD_PAUSE_MAX_S = 5.0


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
    #: Whether this consumer took the event's send lock as it read the entry.
    locked: bool = field(default=False, repr=False)
    #: Whether the entry names an event (a UUID), parsed once, as every step asks.
    is_readable: bool = field(init=False, repr=False)

    def __post_init__(self):
        # Not a cached_property: on Python 3.11 each of its reads takes a lock, and the
        # worker asks this several times an entry.
        object.__setattr__(self, "is_readable", is_event_id(self.event_id))

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


def shard_for(event_id, shards):
    """The shard an event goes to: a stable hash of its id, the same in every process."""
    return zlib.crc32(event_id.encode()) % shards if shards > 1 else 0


def _entries(stream, reply):
    return [Entry(stream, entry_id, fields or None) for entry_id, fields in reply]


# The event ids `is_event_id` accepts, as a Lua pattern ("%-": a bare "-" repeats).
_EVENT_ID_LUA = "^" + "%-".join("[0-9a-f]" * n for n in (8, 4, 4, 4, 12)) + "$"

# Take a send lock for `owner` (SET NX PX), or renew it when `owner` holds it already (its
# batch failed to settle and is read again); true when `owner` holds it now.
_TAKE_LOCK = """
local function take_lock(key, owner, ms)
  if redis.call('SET', key, owner, 'NX', 'PX', ms) then return true end
  if redis.call('GET', key) == owner then
    redis.call('PEXPIRE', key, ms)
    return true
  end
  return false
end
"""

# XREADGROUP the streams in priority order and return the first that has entries: one
# round trip, and atomic, so no default entry is taken while a high one waits. With a
# lock owner (ARGV[4]), also take the send lock of each entry's event (the last
# `event_id` field counts, as in Python): the read and the locks in one round trip.
# Returns {the XREADGROUP reply, 1 or 0 for each entry: locked}.
# ARGV: group, consumer, count, lock owner ('' for none), lock ms, lock key prefix,
# the event id pattern.
_READ_BY_PRIORITY = (
    _TAKE_LOCK
    + """
for _, key in ipairs(KEYS) do
  local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                           'STREAMS', key, '>')
  if reply then
    local taken = {}
    for i, message in ipairs(reply[1][2]) do
      taken[i] = 0
      local fields, event = message[2], nil
      for j = 1, #fields - 1, 2 do
        if fields[j] == 'event_id' then event = fields[j + 1] end
      end
      if ARGV[4] ~= '' and event and string.find(event, ARGV[7])
          and take_lock(ARGV[6] .. event, ARGV[4], ARGV[5]) then
        taken[i] = 1
      end
    end
    return {reply, taken}
  end
end
return false
"""
)

# The send lock of every key for ARGV[1], for ARGV[2] ms; 1 for each taken, 0 for each
# held by someone else.
_SET_LOCKS = (
    _TAKE_LOCK
    + """
local taken = {}
for i, key in ipairs(KEYS) do
  taken[i] = take_lock(key, ARGV[1], ARGV[2]) and 1 or 0
end
return taken
"""
)


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
    """The consumer group, a stream per priority, the dead-letter stream and send locks,
    in every shard.

    `reading` names the shards this process consumes (`MAIL_SHARDS`); producers and the
    operator views reach every shard.
    """

    def __init__(self, connection, *, prefix, group, dead_max=10_000, shards=1, reading=None):
        self.redis = connection
        self.prefix = prefix
        self.group = group
        self.dead_max = dead_max
        self.shards = tuple(range(shards))
        self.reading = tuple(self.shards if reading is None else reading)
        self._read_by_priority = connection.register_script(_READ_BY_PRIORITY)
        self._set_locks = connection.register_script(_SET_LOCKS)
        self._release_due = connection.register_script(_RELEASE_DUE)
        self._streams = {
            shard: [self.stream_key(priority, shard) for priority in READING_ORDER]
            for shard in self.shards
        }
        self._shard_of = {key: shard for shard, keys in self._streams.items() for key in keys}
        self._lock_prefixes = {shard: self.lock_key("", shard) for shard in self.shards}
        self._reading_order = {
            key: index for keys in self._streams.values() for index, key in enumerate(keys)
        }
        #: The stream keys this process reads, shard by shard, high first in each.
        self.stream_keys = [key for shard in self.reading for key in self._streams[shard]]
        self._turn = 0  # where the next read starts among the shards read
        self._paused = {}  # shard -> (monotonic time it is tried again, failures in a row)

    @classmethod
    def from_config(cls, connection, config):
        return cls(
            connection,
            prefix=config["MAIL_STREAM_PREFIX"],
            group=config["MAIL_GROUP"],
            dead_max=config.get("MAIL_DEAD_MAX", 10_000),
            shards=config.get("MAIL_STREAM_SHARDS", 1),
            reading=config.get("MAIL_SHARDS"),
        )

    def reconnect(self):
        """Drop the connections: after a failover the old ones reach a replica, after a
        resharding the slot map is stale."""
        reconnect(self.redis)

    # ---- keys ----------------------------------------------------------------------

    def _tag(self, shard):
        return "{" + self.prefix + (f":{shard}" if shard else "") + "}"

    def _lock_prefix(self, shard):
        """`lock_key(event_id, shard)` is this and the event id."""
        return self._lock_prefixes[shard]

    def shard_of(self, entry):
        """The shard an entry (anything with a `stream`) was read from."""
        return self._shard_of[entry.stream]

    def is_high(self, entry):
        """Whether an entry was read from a high-priority stream, of any shard."""
        return self._reading_order.get(entry.stream) == 0

    def shard_for(self, event_id):
        """The shard an event goes to."""
        return shard_for(event_id, len(self.shards))

    def stream_key(self, priority, shard=0):
        """Return the key of a priority's stream in a shard."""
        return f"{self._tag(shard)}:mail:{Priority(priority)}"

    @property
    def dead_key(self):
        """Shard 0's dead-letter stream."""
        return self.dead_key_of(0)

    def dead_key_of(self, shard):
        """A shard's dead-letter stream."""
        return f"{self._tag(shard)}:mail:dead"

    def due_key(self, priority, shard=0):
        """The sorted set of the priority's events waiting for a retry, by due time."""
        return f"{self.stream_key(priority, shard)}:due"

    def delayed_key(self, event_id, shard=0):
        """The hash holding a waiting event's entry fields until it is due."""
        return f"{self._tag(shard)}:mail:delayed:{event_id}"

    def lock_key(self, event_id, shard=0):
        """The key that marks an event as being sent right now."""
        return f"{self._tag(shard)}:mail:sending:{event_id}"

    def probe_key(self, shard):
        """A key /health writes, to see that the shard's slot takes writes."""
        return f"{self._tag(shard)}:mail:probe"

    # ---- producing -----------------------------------------------------------------

    def ensure_group(self):
        """Create the consumer group on every stream read; one that exists already is fine."""
        for key in self.stream_keys:
            try:
                self.redis.xgroup_create(key, self.group, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    def _shard(self, shard, event_id):
        return self.shard_for(event_id) if shard is None else shard

    def publish(self, priority, fields, shard=None):
        """Add an event to its priority's stream in its shard; return the entry id."""
        shard = self._shard(shard, fields["event_id"])
        return self.redis.xadd(self.stream_key(priority, shard), fields)

    def schedule(self, priority, fields, due_ms, shard=None):
        """Keep an event off its stream until `due_ms` (epoch milliseconds), waiting as a
        retry waits, until `release_due` puts it on. Scheduling it again moves its time."""
        event_id = fields["event_id"]
        shard = self._shard(shard, event_id)
        body = self.delayed_key(event_id, shard)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(body)
        pipe.hset(body, mapping=fields)
        pipe.zadd(self.due_key(priority, shard), {event_id: int(due_ms)})
        pipe.execute()

    def still_owed(self, refs):
        """For (priority, shard, entry id, event id) tuples, tell which events Redis still
        holds: at that entry of their stream, or waiting for a retry."""
        if not refs:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for priority, shard, entry_id, event_id in refs:
            pipe.xrange(self.stream_key(priority, shard), entry_id, entry_id)
            pipe.exists(self.delayed_key(event_id, shard))
        found = pipe.execute()
        # The entry at that id must be this event's: after a failover lost it, a new
        # primary may have given its id to another event.
        return [
            any(fields.get("event_id") == event_id for _, fields in found[2 * i])
            or bool(found[2 * i + 1])
            for i, (_, _, _, event_id) in enumerate(refs)
        ]

    # ---- consuming -----------------------------------------------------------------

    def own_pending(self, consumer):
        """Return a reader of what `consumer` left pending before it last stopped."""
        return PendingHistory(self, consumer)

    def _shards_in_turn(self):
        """The shards read, starting one further at each call (only `read_new` takes
        turns), so none starves another; see `_answering`."""
        start = self._turn % len(self.reading)
        self._turn += 1
        return self._answering(self.reading[start:] + self.reading[:start])

    def _answering(self, shards):
        """`shards` but those paused after a failure, unless every one is."""
        current = time.monotonic()
        answering = [shard for shard in shards if self._paused.get(shard, (0.0,))[0] <= current]
        return answering or shards

    def _each_shard(self, shards, command):
        """Run `command(shard)` on each shard; yield (shard, reply) for those that answer.

        A shard whose command fails is paused (skipped by the next reads for a backoff)
        and the others go on: one slot moving between masters must not stop the mail of
        the rest. When every shard fails (one Redis down, or a single shard) the last
        error is raised, for the consumer's loop to back off as for any Redis error.
        """
        failed = None
        for shard in shards:
            try:
                reply = command(shard)
            except REDIS_ERRORS as error:
                failed = error
                self._pause(shard, error)
                continue
            self._paused.pop(shard, None)
            yield shard, reply
        if failed is not None and all(shard in self._paused for shard in shards):
            raise failed

    def _pause(self, shard, error):
        _, failures = self._paused.get(shard, (0.0, 0))
        failures += 1
        delay = compute_backoff(failures, base=SHARD_PAUSE_BASE_S, cap=SHARD_PAUSE_MAX_S)
        self._paused[shard] = (time.monotonic() + delay, failures)
        if len(self.reading) > 1:
            log.warning(
                "shard %d: %s: %s; the other shards go on, this one again in %.1fs",
                shard,
                type(error).__name__,
                error,
                delay,
            )

    def read_new(self, consumer, *, count, block_ms, lock_ms=None):
        """Read entries never delivered, one shard's batch at a time, high priority first
        within the shard; block when no shard has any (unless `block_ms` is None).

        With `lock_ms`, the send locks of what a non-blocking read finds are taken for
        `consumer` in the same round trip, as `lock` would; those entries say `locked`.

        The shards take turns being looked at first. With several shards the blocking read
        waits on one shard, for its share of `block_ms`, since a cluster cannot block on
        keys of several slots at once; an entry arriving elsewhere is seen on the next turn.
        """
        order = self._shards_in_turn()

        owner = consumer if lock_ms is not None else ""

        def read(shard):
            keys = self._streams[shard]
            prefix = self._lock_prefix(shard)
            args = [self.group, consumer, count, owner, lock_ms or 0, prefix, _EVENT_ID_LUA]
            return self._read_by_priority(keys=keys, args=args)

        answering = []
        for shard, waiting in self._each_shard(order, read):
            if waiting:
                [[(key, messages)], taken] = waiting
                # A script's reply is raw: each entry's fields come as a flat list.
                return [
                    Entry(key, entry_id, dict(zip(f[::2], f[1::2], strict=True)), locked == 1)
                    for (entry_id, f), locked in zip(messages, taken, strict=True)
                ]
            answering.append(shard)
        if not answering or block_ms is None:
            return []  # every shard tried is paused now; the next read tries others

        shard = answering[0]
        try:
            reply = self.redis.xreadgroup(
                self.group,
                consumer,
                {key: ">" for key in self._streams[shard]},
                count=count,
                block=max(1, block_ms // len(order)),
            )
        except REDIS_ERRORS as error:
            # A blocked read whose slot migrated away is UNBLOCKED: with other shards to
            # read, that shard pauses and the next read goes on with them.
            if len(self.reading) == 1:
                raise
            self._pause(shard, error)
            return []
        entries = []
        for key, messages in sorted(reply or [], key=lambda item: self._reading_order[item[0]]):
            entries += _entries(key, messages)
        return entries

    def read_urgent(self, consumer, *, count):
        """Read entries never delivered from the high streams only, without blocking: what
        a worker in the middle of a default batch sends first."""
        entries = []

        def read(shard):
            return self.redis.xreadgroup(
                self.group,
                consumer,
                {self.stream_key(Priority.HIGH, shard): ">"},
                count=count - len(entries),
            )

        for _, reply in self._each_shard(self._answering(self.reading), read):
            entries += [entry for key, messages in reply or [] for entry in _entries(key, messages)]
            if len(entries) >= count:
                break
        return entries

    def claim(self, consumer, held):
        """Take entries (anything with `stream` and `entry_id`) for `consumer`, resetting
        their idle time; return them as read now (deleted ones are left out)."""
        entries = []
        for stream, ids in _by_stream(held).items():
            entries += _entries(stream, self.redis.xclaim(stream, self.group, consumer, 0, ids))
        return entries

    def reclaim_idle(self, consumer, *, min_idle_ms, count):
        """Take every entry idle longer than `min_idle_ms`, a batch at a time.

        Yields (entries, deleted) per batch: Redis 7 reports the ids of entries that were
        pending but are gone from the stream, given here as entries without fields;
        Redis 6.2 returns them among the entries, with no body.
        """
        for key in self.stream_keys:
            cursor = "0-0"
            while True:
                reply = self.redis.xautoclaim(
                    key, self.group, consumer, min_idle_ms, start_id=cursor, count=count
                )
                cursor, claimed = reply[0], reply[1]
                deleted = reply[2] if len(reply) > 2 else []
                yield _entries(key, claimed), [Entry(key, gone, None) for gone in deleted]
                if cursor in ("0-0", "0"):
                    break

    def lock(self, owner, entries, ttl_ms):
        """Mark readable entries' events as being sent by `owner`; return those now held.

        One script call per shard for the batch instead of a SET NX PX each. An event
        another consumer is sending right now stays out of the result.
        """
        held = []
        for shard, readable in self._by_shard(e for e in entries if e.is_readable).items():
            keys = [self.lock_key(entry.event_id, shard) for entry in readable]
            taken = self._set_locks(keys=keys, args=[owner, ttl_ms])
            held += [entry for entry, won in zip(readable, taken, strict=True) if won]
        return held

    def _by_shard(self, entries):
        grouped = {}
        for entry in entries:
            grouped.setdefault(self.shard_of(entry), []).append(entry)
        return grouped

    def settle(self, *, acked=(), dead=(), requeued=(), later=(), unlock=()):
        """Finish with entries in one MULTI/EXEC per shard, and return where requeued
        events went.

        `acked` are done; `dead` are (entry, reason) pairs copied to the dead-letter
        stream (capped at `dead_max`, roughly); `requeued` go back to the end of their
        stream for any consumer, with their redelivery count raised; `later` are (entry,
        seconds) pairs that wait outside the stream, and outside the pending list, until
        `release_due` puts them back. All of them are then acknowledged and deleted, so a
        stream holds only what is still owed. `unlock` releases those entries' send
        locks. Nothing is acknowledged without its copy. Returns (event id, new entry
        id) pairs for the requeued entries that had a body.
        """
        if len(self.shards) == 1:  # nothing to sort by shard
            return self._settle_shard(
                0, acked=acked, dead=dead, requeued=requeued, later=later, unlock=unlock
            )
        work = {}
        for name, items in (
            ("acked", acked),
            ("dead", dead),
            ("requeued", requeued),
            ("later", later),
            ("unlock", unlock),
        ):
            for item in items:
                entry = item[0] if isinstance(item, tuple) else item
                work.setdefault(self.shard_of(entry), {}).setdefault(name, []).append(item)
        moved = []
        for shard, parts in work.items():
            moved += self._settle_shard(shard, **parts)
        return moved

    def _settle_shard(self, shard, *, acked=(), dead=(), requeued=(), later=(), unlock=()):
        now_ms = _now_ms()
        pipe = self.redis.pipeline(transaction=True)
        for entry, reason in dead:
            kept = list((entry.fields or {}).items())[:DEAD_FIELDS_KEPT]
            copy = {name[:100]: value[:DEAD_FIELD_CHARS] for name, value in kept}
            copy.update(
                stream=entry.stream, entry_id=entry.entry_id, error=reason[:500], dead_at=now_ms
            )
            pipe.xadd(self.dead_key_of(shard), copy, maxlen=self.dead_max, approximate=True)
        moved = [entry for entry in requeued if entry.fields]
        for entry in moved:
            pipe.xadd(entry.stream, {**entry.fields, "redeliveries": str(entry.deliveries)})
        waiting = [(entry, delay) for entry, delay in later if entry.fields and entry.is_readable]
        for entry, delay in waiting:
            body = self.delayed_key(entry.event_id, shard)
            pipe.delete(body)
            pipe.hset(body, mapping=entry.fields)
            pipe.zadd(f"{entry.stream}:due", {entry.event_id: now_ms + int(delay * 1000)})
        finished = [*acked, *(entry for entry, _ in dead), *requeued, *(e for e, _ in waiting)]
        for stream, ids in _by_stream(finished).items():
            pipe.xack(stream, self.group, *ids)
            pipe.xdel(stream, *ids)
        prefix = self._lock_prefix(shard)
        locks = [prefix + entry.event_id for entry in unlock if entry.is_readable]
        if locks:
            pipe.delete(*locks)
        if not len(pipe):
            return []
        results = pipe.execute()
        new_ids = results[len(dead) : len(dead) + len(moved)]
        return [(entry.event_id, new_id) for entry, new_id in zip(moved, new_ids, strict=True)]

    def release_due(self, *, count=100, now_ms=None):
        """Put events whose retry is due back on their streams, in every shard read.

        Returns the (event id, new entry id) pairs moved, and the seconds until the next
        waiting event is due (None when none waits).
        """
        now_ms = _now_ms() if now_ms is None else now_ms
        pairs, soonest = [], None

        def release(shard):
            streams = self._streams[shard]
            keys = [*streams, *(f"{key}:due" for key in streams)]
            return self._release_due(keys=keys, args=[now_ms, count, self.delayed_key("", shard)])

        for _, (flat, next_due) in self._each_shard(self._answering(self.reading), release):
            pairs += zip(flat[::2], flat[1::2], strict=True)
            if next_due and (soonest is None or float(next_due) < soonest):
                soonest = float(next_due)
        wait_s = None if soonest is None else max(0.0, (soonest - now_ms) / 1000)
        return pairs, wait_s

    # ---- health --------------------------------------------------------------------

    def check_writable(self):
        """Write a short-lived key in every shard's slot, where the pipeline's keys live:
        a replica (READONLY), a node that does not own the slot (MOVED) or a cluster
        that is down raises, where a PING to some node would not."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in self.shards:
            pipe.set(self.probe_key(shard), _now_ms(), px=60_000)
        pipe.execute()

    # ---- operator views and actions ------------------------------------------------

    def _shards_shown(self, shard):
        return self.shards if shard is None else (shard,)

    def stream_states(self, shard=None):
        """The state of every stream (of one `shard`), each naming its shard: what
        `state` and `shard_states` sum, read once when a caller wants both."""
        return [
            {**self._stream_state(priority, each), "shard": each}
            for each in self._shards_shown(shard)
            for priority in READING_ORDER
        ]

    def state(self, shard=None, states=None):
        """Length, pending, lag, oldest pending age and consumers of each priority's
        streams, summed over the shards (or of one `shard`), from `states` if given."""
        states = self.stream_states(shard) if states is None else states
        return [
            _combined([state for state in states if state["priority"] == priority])
            for priority in READING_ORDER
        ]

    def shard_states(self, states=None):
        """Each shard's entries waiting and pending, high and default together."""
        states = self.stream_states() if states is None else states
        by_shard = {}
        for state in states:
            by_shard.setdefault(state["shard"], []).append(state)
        return [
            {
                "shard": shard,
                "lag": sum(state["lag"] or 0 for state in streams),
                "pending": sum(state["pending"] for state in streams),
                "scheduled": sum(state["scheduled"] for state in streams),
            }
            for shard, streams in sorted(by_shard.items())
        ]

    def _stream_state(self, priority, shard):
        key = self.stream_key(priority, shard)
        state = {
            "priority": str(priority),
            "stream": key,
            "length": self.redis.xlen(key),
            "pending": 0,
            "lag": None,
            "oldest_pending_age_s": None,
            "consumers": [],
            "scheduled": self.redis.zcard(self.due_key(priority, shard)),
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

    def dead_count(self, shard=None):
        """How many entries the dead-letter streams hold."""
        return sum(self.redis.xlen(self.dead_key_of(each)) for each in self._shards_shown(shard))

    def dead_letters(self, limit=None, shard=None):
        """Return dead letters as (dead id, fields), newest first; all of them without
        `limit`. A dead id names its shard too (`3:1700000000000-0`), but for shard 0."""
        letters = []
        for each in self._shards_shown(shard):
            for dead_id, fields in self.redis.xrevrange(self.dead_key_of(each), count=limit):
                letters.append((_entry_time(dead_id), _dead_id(each, dead_id), fields))
        letters.sort(key=lambda letter: letter[0], reverse=True)
        return [(dead_id, fields) for _, dead_id, fields in letters[:limit]]

    def drop_dead(self, dead_ids):
        """Remove dead letters once they are dealt with."""
        by_shard = {}
        for dead_id in dead_ids:
            shard, _, entry_id = dead_id.rpartition(":")
            by_shard.setdefault(int(shard or 0), []).append(entry_id)
        for shard, ids in by_shard.items():
            self.redis.xdel(self.dead_key_of(shard), *ids)

    def stream_keys_of(self, shard):
        """A shard's stream keys, high first."""
        return list(self._streams[shard])

    def _every_stream(self):
        return [key for shard in self.shards for key in self._streams[shard]]

    def held_by(self, consumer, limit=10_000):
        """What `consumer` holds unacknowledged, on every stream, with idle times."""
        held = []
        for key in self._every_stream():
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
        for key in self._every_stream():
            if self.redis.exists(key):
                names |= {c["name"] for c in self.redis.xinfo_consumers(key, self.group)}
        return names

    def remove_consumer(self, consumer):
        """Drop `consumer` from the group on every stream (what it held is dropped too)."""
        for key in self._every_stream():
            if self.redis.exists(key):
                self.redis.xgroup_delconsumer(key, self.group, consumer)


class PendingHistory:
    """Reads a consumer's own pending entries from the start, a batch at a time, shard by
    shard."""

    def __init__(self, queue, consumer):
        self.queue = queue
        self.consumer = consumer
        self._cursors = {
            shard: {key: "0" for key in queue._streams[shard]} for shard in queue.reading
        }

    @property
    def exhausted(self):
        return not self._cursors

    def read(self, count):
        """Return the next batch of this consumer's pending entries; [] once none are left."""
        while self._cursors:
            shard, cursors = next(iter(self._cursors.items()))

            try:
                reply = self.queue.redis.xreadgroup(
                    self.queue.group, self.consumer, cursors, count=count
                )
            except REDIS_ERRORS as error:
                if len(self.queue.reading) == 1:
                    raise
                # Left for the reaper, or for this consumer's next start: the other
                # shards' history is read now.
                self.queue._pause(shard, error)
                del self._cursors[shard]
                continue
            entries = []
            for key, messages in reply or []:
                if messages:
                    cursors[key] = messages[-1][0]
                    entries += _entries(key, messages)
                else:
                    del cursors[key]
            if not reply or not cursors:
                del self._cursors[shard]
            if entries:
                return entries
        return []


def _combined(states):
    """One priority's state over several shards: counts summed, the oldest age kept."""
    if len(states) == 1:
        return states[0]
    ages = [state["oldest_pending_age_s"] for state in states]
    consumers = {}
    for state in states:
        for consumer in state["consumers"]:
            seen = consumers.setdefault(consumer["name"], {**consumer, "pending": 0})
            seen["pending"] += consumer["pending"]
            seen["idle_s"] = min(seen["idle_s"], consumer["idle_s"])
    return {
        "priority": states[0]["priority"],
        "stream": ", ".join(state["stream"] for state in states),
        "length": sum(state["length"] for state in states),
        "pending": sum(state["pending"] for state in states),
        "lag": sum(state["lag"] or 0 for state in states),
        "oldest_pending_age_s": max((age for age in ages if age is not None), default=None),
        "consumers": sorted(consumers.values(), key=lambda consumer: consumer["name"]),
        "scheduled": sum(state["scheduled"] for state in states),
        "shard": None,
        "shards": len(states),
    }


def _dead_id(shard, entry_id):
    return f"{shard}:{entry_id}" if shard else entry_id


def _entry_time(entry_id):
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _by_stream(items):
    grouped = {}
    for item in items:
        grouped.setdefault(item.stream, []).append(item.entry_id)
    return grouped


def _now_ms():
    return int(now().timestamp() * 1000)
