"""Prometheus metrics that are right with many processes on many hosts.

Counters live in Redis hashes (HINCRBY), not in process memory: gunicorn has several
workers and mail workers may run anywhere, and each scrape of `/metrics` reads the
shared totals. Counting never fails a request or a delivery: a Redis error only loses
that tick. This module knows HTTP requests only; other parts of the app bring their own
collectors to `exposition()` (the mail pipeline's are in `gobarber.mail.metrics`).
"""

import logging

import redis
from flask import current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily

from gobarber.extensions import redis_store

log = logging.getLogger(__name__)


def counter_key(name):
    """The Redis hash holding the counters called `name`."""
    return f"{{{current_app.config['MAIL_STREAM_PREFIX']}}}:metrics:{name}"


def increment(amounts):
    """Add to counters, {(hash name, field): amount}, in one round trip."""
    pipe = redis_store.get().pipeline(transaction=False)
    for (name, field), amount in amounts.items():
        if isinstance(amount, float):
            pipe.hincrbyfloat(counter_key(name), field, amount)
        else:
            pipe.hincrby(counter_key(name), field, amount)
    try:
        pipe.execute()
    except redis.RedisError as error:
        log.debug("not counted (%s): %s", ", ".join(sorted({n for n, _ in amounts})), error)


def read(name):
    """Return every counter of the hash `name`."""
    return redis_store.get().hgetall(counter_key(name))


def count_request(route, method, status):
    """Count one HTTP request by route template, method and status."""
    increment({("http", f"{method}|{route}|{status}"): 1})


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
        for field, value in self.counts.items():
            method, route, status = field.split("|")
            family.add_metric([route, method, status], int(value))
        yield family


def exposition(*collectors):
    """Render the HTTP counters and `collectors` in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in (*collectors, HttpCollector(read("http"))):
        registry.register(collector)
    return generate_latest(registry)
