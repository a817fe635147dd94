"""Prometheus metrics that are right with many processes on many hosts.

Counters live in Redis hashes (HINCRBY), not in process memory: gunicorn has several
workers and mail workers may run anywhere, and each scrape of `/metrics` reads the
shared totals. Counting never fails a request or a delivery. HTTP requests are counted
in memory and published by a thread of the process that counts (`RequestCounts`), so a
slow or hung Redis never holds a request up; other counts (`increment`) go straight to
Redis, or, inside `batched()`, at the end of the block (a worker's batch of mails), summed
per field in one round trip; a Redis error only loses those counts. This module knows
HTTP requests only; other parts of the app bring their own collectors to `exposition()`
(the mail pipeline's are in `gobarber.mail.metrics`).
"""

import atexit
import contextlib
import contextvars
import logging
import os
import threading
import uuid
from collections import Counter

import redis
from flask import current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily

from gobarber.extensions import redis_store
from gobarber.redis_connection import REDIS_ERRORS

log = logging.getLogger(__name__)

# Anything else a client writes in its request line is counted as `other`: a client
# must not be able to add series at will.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
FLUSH_INTERVAL_S = 1.0
# How long a process that exits waits for its last counts to reach Redis.
EXIT_FLUSH_TIMEOUT_S = 5.0
# Distinct (method, route, status) fields kept per Redis while it does not answer.
# Routes and methods are bounded already; this only caps what a bug could add.
MAX_PENDING_FIELDS = 1000
# How long Redis remembers a process's last publication, to answer "did it land?".
RECEIPT_TTL_MS = 600_000


# The counts of the `batched()` block running in this context, by (Redis client, hash
# key, field); None outside one. The key and client are resolved when a count is given,
# so the block may end outside the app context the counts were made in.
_batch = contextvars.ContextVar("gobarber_metrics_batch", default=None)


def counter_key(name):
    """The Redis hash holding the counters called `name`."""
    return f"{{{current_app.config['MAIL_STREAM_PREFIX']}}}:metrics:{name}"


def increment(amounts):
    """Add to counters, {(hash name, field): amount}, in one round trip; inside
    `batched()`, with the block's other counts when it ends."""
    client = redis_store.get()
    batch = _batch.get()
    if batch is None:
        _send(client, {(counter_key(name), field): n for (name, field), n in amounts.items()})
        return
    for (name, field), amount in amounts.items():
        batch[client, counter_key(name), field] += amount


@contextlib.contextmanager
def batched():
    """Hold back the block's counts, summed per field, and send them in one round trip
    when it ends, also when it raises: what was counted was done and committed. A block
    inside another adds to the outer one's counts."""
    if _batch.get() is not None:
        yield
        return
    batch = Counter()
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
        by_client = {}
        for (client, key, field), amount in batch.items():
            by_client.setdefault(client, {})[key, field] = amount
        for client, counts in by_client.items():
            _send(client, counts)


def _send(client, counts):
    """HINCRBY (HINCRBYFLOAT for a float) each of `counts`, {(hash key, field): amount},
    in one non-transactional pipeline; a Redis error loses them."""
    pipe = client.pipeline(transaction=False)
    for (key, field), amount in counts.items():
        if isinstance(amount, float):
            pipe.hincrbyfloat(key, field, amount)
        else:
            pipe.hincrby(key, field, amount)
    try:
        pipe.execute()
    except REDIS_ERRORS as error:
        log.debug("not counted (%s): %s", ", ".join(sorted({k for k, _ in counts})), error)


def read(name):
    """Return every counter of the hash `name`."""
    return redis_store.get().hgetall(counter_key(name))


class _Outbox:
    """One Redis hash's counts not yet published, and the batch in flight."""

    def __init__(self, client, key, receipt_key):
        self.client = client
        self.key = key
        self.receipt_key = receipt_key
        self.pending = Counter()
        self.dropped = 0
        self.sequence = 0
        self.in_flight = None  # (sequence, Counter): sent, not known to have landed
        self.failing = False
        # One publication at a time, by the thread or by a scrape: a batch in flight
        # re-sent by two at once could land twice.
        self.publishing = threading.Lock()

    def take(self):
        """Make the pending counts the batch in flight, unless one is already."""
        if self.in_flight is None and self.pending:
            self.sequence += 1
            self.in_flight = (self.sequence, self.pending)
            self.pending = Counter()
        return self.in_flight

    def publish(self, batch, *, retry):
        """HINCRBY the batch with a receipt, in one transaction; once, even on a retry."""
        sequence, counts = batch
        with self.client.pipeline(transaction=True) as pipe:
            if retry:
                # The first attempt failed after it was sent: Redis may have applied it,
                # or may still, so look for its receipt; WATCH makes a late landing
                # abort this attempt rather than count the batch twice.
                pipe.watch(self.receipt_key)
                if pipe.get(self.receipt_key) == str(sequence):
                    return
                pipe.multi()
            pipe.set(self.receipt_key, sequence, px=RECEIPT_TTL_MS)
            for field, amount in counts.items():
                pipe.hincrby(self.key, field, amount)
            # WatchError: the receipt changed, so the first attempt has just landed.
            with contextlib.suppress(redis.WatchError):
                pipe.execute()


class RequestCounts:
    """HTTP request counts kept in memory, published to Redis by a thread every second.

    The thread starts in the process that counts, on its first count: gunicorn imports
    the app in its master and forks the workers, and a thread does not survive a fork.
    """

    def __init__(self):
        self._reset()

    def _reset(self):
        # Also in a forked child: counts inherited from the parent are the parent's to
        # publish, and a lock some thread of the parent held would never be released.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._outboxes = {}
        self._pid = None
        self._thread = None
        self._asked = self._done = 0

    def add(self, client, key, field):
        """Count one request in the hash `key` of the Redis `client`; never wait on it."""
        with self._lock:
            if self._pid != os.getpid():
                self._start()
            outbox = self._outboxes.get((id(client), key))
            if outbox is None:
                receipt_key = f"{key}:published:{self._identity}"
                outbox = self._outboxes[id(client), key] = _Outbox(client, key, receipt_key)
            if field in outbox.pending or len(outbox.pending) < MAX_PENDING_FIELDS:
                outbox.pending[field] += 1
            else:
                outbox.dropped += 1

    def flush(self, timeout):
        """Ask the thread to publish now; wait up to `timeout` s; True once all landed."""
        with self._wake:
            if self._pid != os.getpid() or not self._thread.is_alive():
                return not self._outboxes
            self._asked += 1
            ticket = self._asked
            self._wake.notify_all()
            self._wake.wait_for(lambda: self._done >= ticket, timeout)
            return not self._outboxes

    def publish_now(self, client, key):
        """Publish the counts of the hash `key` on `client` in the calling thread, not
        the counting thread's: a scrape shows its own process's counts whatever else
        that thread is waiting on (another Redis of the process that hangs)."""
        with self._lock:
            outbox = self._outboxes.get((id(client), key)) if self._pid == os.getpid() else None
        if outbox is not None:
            self._publish(outbox)

    def _start(self):
        self._pid = os.getpid()
        self._identity = uuid.uuid4().hex  # names this process's receipts in Redis
        self._thread = threading.Thread(
            target=self._run, name="gobarber-request-counts", daemon=True
        )
        self._thread.start()
        atexit.register(self._flush_at_exit, self._pid)

    def _flush_at_exit(self, pid):
        if pid == os.getpid() and not self.flush(EXIT_FLUSH_TIMEOUT_S):
            log.warning("exiting with HTTP request counts not published to Redis")

    def _run(self):
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._asked > self._done, FLUSH_INTERVAL_S)
                asked = self._asked
            try:
                self._publish_all()
            except Exception:  # the thread must outlive any bug, or counts pile up
                log.exception("publishing HTTP request counts failed")
            with self._wake:
                self._done = max(self._done, asked)
                self._wake.notify_all()

    def _publish_all(self):
        with self._lock:
            outboxes = list(self._outboxes.values())
        for outbox in outboxes:
            self._publish(outbox)
        with self._lock:
            for name, outbox in list(self._outboxes.items()):
                if outbox.in_flight is None and not outbox.pending:
                    del self._outboxes[name]

    def _publish(self, outbox):
        with outbox.publishing:
            self._publish_locked(outbox)

    def _publish_locked(self, outbox):
        # At most two rounds: a batch left from a failed flush, then what came since.
        for _ in range(2):
            with self._lock:
                retry = outbox.in_flight is not None
                batch = outbox.take()
                dropped, outbox.dropped = outbox.dropped, 0
            if dropped:
                log.warning("%d HTTP requests not counted: too many distinct fields", dropped)
            if batch is None:
                return
            try:
                outbox.publish(batch, retry=retry)
            except REDIS_ERRORS as error:
                if not outbox.failing:
                    log.warning("HTTP request counts not published yet, kept: %s", error)
                outbox.failing = True
                return
            if outbox.failing:
                log.info("HTTP request counts published again")
            outbox.failing = False
            with self._lock:
                outbox.in_flight = None


_requests = RequestCounts()
os.register_at_fork(after_in_child=_requests._reset)


def count_request(route, method, status):
    """Count one HTTP request by route template, method and status; never wait on Redis."""
    method = method if method in METHODS else OTHER_METHOD
    _requests.add(redis_store.get(), counter_key("http"), f"{method}|{route}|{status}")


def publish_pending():
    """Publish the current app's counted requests of this process to its Redis now."""
    _requests.publish_now(redis_store.get(), counter_key("http"))


def parse_request_field(field, value):
    """Return ((route, method, status), count) for a counter field, or None if unreadable."""
    parts = field.split("|")
    if len(parts) != 3:
        return None
    method, route, status = parts
    if not (status.isdigit() and len(status) == 3):
        return None
    try:
        count = int(value)
    except ValueError:
        return None
    # Counted before methods were bounded: fold them into `other`, not into new series.
    return (route, method if method in METHODS else OTHER_METHOD, status), count


class HttpCollector:
    """HTTP requests by route, method and status, read from Redis at scrape time."""

    def __init__(self, counts):
        self.counts = counts

    def collect(self):
        family = CounterMetricFamily(
            "gobarber_http_requests",
            "HTTP requests by route, method and status",
            labels=["route", "method", "status"],
        )
        totals, unreadable = Counter(), []
        for field, value in self.counts.items():
            parsed = parse_request_field(field, value)
            if parsed is None:
                unreadable.append(field)
            else:
                totals[parsed[0]] += parsed[1]
        if unreadable:
            log.warning(
                "skipped %d unreadable HTTP counter fields, e.g. %r",
                len(unreadable),
                unreadable[0][:100],
            )
        for labels, count in totals.items():
            family.add_metric(list(labels), count)
        yield family


def exposition(*collectors):
    """Render the HTTP counters and `collectors` in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in (*collectors, HttpCollector(read("http"))):
        registry.register(collector)
    return generate_latest(registry)
