"""Prometheus metrics that are right with many processes on many hosts.

Counters live in Redis hashes (HINCRBY), not in process memory: gunicorn has several
workers and mail workers may run anywhere, and each scrape of `/metrics` reads the
shared totals. Gauges (pending, lag, oldest pending age, dead letters) are read from the
streams at scrape time. Counting never fails a request or a delivery: a Redis error
only loses that tick.
"""

import logging
import math

import redis
from flask import current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from gobarber.mail import streams

log = logging.getLogger(__name__)

# Seconds from the cancel to the SMTP server's acceptance.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, math.inf)
MAIL_COUNTERS = {
    "queued": "Mail events put on a stream",
    "sent": "Mails the SMTP server accepted",
    "failed": "Send attempts that failed",
    "retried": "Mails scheduled for another attempt",
    "dead": "Mails dead-lettered",
}


def _hash(keys, name):
    return f"{{{keys.prefix}}}:metrics:{name}"


def _client_and_keys():
    return current_app.extensions["redis"], streams.Keys.of()


def count_request(route, method, status):
    """Count one HTTP request by route template, method and status."""
    client, keys = _client_and_keys()
    try:
        client.hincrby(_hash(keys, "http"), f"{method}|{route}|{status}", 1)
    except redis.RedisError as error:
        log.debug("request not counted: %s", error)


def count_mail(state, kind, *, attempt_failed=False, latency=None):
    """Count a mail transition; with `latency`, observe the cancel-to-accepted time."""
    client, keys = _client_and_keys()
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(_hash(keys, "mail"), f"{state}|{kind}", 1)
    if attempt_failed:
        pipe.hincrby(_hash(keys, "mail"), f"failed|{kind}", 1)
    if latency is not None:
        bucket = next(b for b in LATENCY_BUCKETS if latency <= b)
        latency_key = _hash(keys, "latency")
        pipe.hincrby(latency_key, f"{kind}|{bucket}", 1)
        pipe.hincrbyfloat(latency_key, f"{kind}|sum", latency)
    try:
        pipe.execute()
    except redis.RedisError as error:
        log.debug("mail transition not counted: %s", error)


class RedisCollector:
    """Builds every metric family from Redis at scrape time."""

    def __init__(self, client, keys, queue_state):
        self.client = client
        self.keys = keys
        self.queue_state = queue_state

    def collect(self):
        yield from self._mail_counters()
        yield self._latency()
        yield self._http()
        yield from self._queue_gauges()

    def _mail_counters(self):
        counts = self.client.hgetall(_hash(self.keys, "mail"))
        for state, help_text in MAIL_COUNTERS.items():
            family = CounterMetricFamily(f"gobarber_mail_{state}", help_text, labels=["kind"])
            for field, value in counts.items():
                field_state, kind = field.split("|", 1)
                if field_state == state:
                    family.add_metric([kind], int(value))
            yield family

    def _latency(self):
        family = HistogramMetricFamily(
            "gobarber_mail_cancel_to_accepted_seconds",
            "Time from the cancel to the SMTP server accepting the mail",
            labels=["kind"],
        )
        raw = self.client.hgetall(_hash(self.keys, "latency"))
        for kind in sorted({field.split("|", 1)[0] for field in raw}):
            cumulative, buckets = 0, []
            for bound in LATENCY_BUCKETS:
                cumulative += int(raw.get(f"{kind}|{bound}", 0))
                buckets.append(("+Inf" if bound == math.inf else str(bound), cumulative))
            family.add_metric([kind], buckets, float(raw.get(f"{kind}|sum", 0)))
        return family

    def _http(self):
        family = CounterMetricFamily(
            "gobarber_http_requests",
            "HTTP requests by route, method and status",
            labels=["route", "method", "status"],
        )
        for field, value in self.client.hgetall(_hash(self.keys, "http")).items():
            method, route, status = field.split("|")
            family.add_metric([route, method, status], int(value))
        return family

    def _queue_gauges(self):
        gauges = {
            "pending": GaugeMetricFamily(
                "gobarber_mail_pending",
                "Entries delivered to a worker, not yet acknowledged",
                labels=["priority"],
            ),
            "lag": GaugeMetricFamily(
                "gobarber_mail_lag", "Entries not yet delivered to any worker", labels=["priority"]
            ),
            "oldest_pending_age_s": GaugeMetricFamily(
                "gobarber_mail_oldest_pending_age_seconds",
                "Age of the oldest pending entry",
                labels=["priority"],
            ),
        }
        for state in self.queue_state(self.client, self.keys):
            for name, family in gauges.items():
                family.add_metric([state["priority"]], float(state[name] or 0))
        yield from gauges.values()
        dead = GaugeMetricFamily("gobarber_mail_dead_letters", "Entries in the dead-letter stream")
        dead.add_metric([], self.client.xlen(self.keys.dead))
        yield dead


def exposition():
    """Render every metric in the Prometheus text format."""
    from gobarber.mail.queue import stream_state

    client, keys = _client_and_keys()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(client, keys, stream_state))
    return generate_latest(registry)
