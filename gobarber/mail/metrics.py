"""The mail pipeline's metrics: transitions counted as they happen (a worker's or the
reaper's batch sends its counts together, at its end), queue gauges at scrape time.
`transitions.record` counts; `/metrics` renders `MailCollector`."""

import logging
import math

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from gobarber import metrics
from gobarber.extensions import db
from gobarber.models import MailDelivery
from gobarber.models.mail_delivery import DeliveryStatus, MailKind
from gobarber.shop_time import now

log = logging.getLogger(__name__)

# Seconds from the cancel to the SMTP server's acceptance.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, math.inf)
COUNTERS = {
    "queued": "Mail events put on a stream",
    "sent": "Mails the SMTP server accepted",
    "failed": "Send attempts that failed",
    "retried": "Mails scheduled for another attempt",
    "dead": "Mails dead-lettered",
}


def count_transition(state, kind, *, attempt_failed=False, latency=None):
    """Count a transition; with `latency`, observe the cancel-to-accepted time."""
    counts = {("mail", f"{state}|{kind}"): 1}
    if attempt_failed:
        counts["mail", f"failed|{kind}"] = 1
    if latency is not None:
        bucket = next(b for b in LATENCY_BUCKETS if latency <= b)
        counts["latency", f"{kind}|{bucket}"] = 1
        counts["latency", f"{kind}|sum"] = float(latency)
    metrics.increment(counts)


class MailCollector:
    """Mail counters, the latency histogram, the queue's gauges, the held and scheduled
    mails and the live workers, built at scrape time from the `queue`, the outbox and the
    workers' `heartbeats`."""

    def __init__(self, queue, heartbeats):
        self.queue = queue
        self.heartbeats = heartbeats

    def collect(self):
        yield from self._counters(metrics.read("mail"))
        yield self._latency(metrics.read("latency"))
        yield from self._queue_gauges()
        yield from self._held()
        yield from self._scheduled()
        workers = GaugeMetricFamily(
            "gobarber_mail_workers_alive", "Mail workers whose heartbeat has not expired"
        )
        workers.add_metric([], len(self.heartbeats.alive()))
        yield workers

    def _counters(self, counts):
        for state, help_text in COUNTERS.items():
            family = CounterMetricFamily(f"gobarber_mail_{state}", help_text, labels=["kind"])
            counted = set()
            for field, value in counts.items():
                field_state, kind = field.split("|", 1)
                if field_state == state:
                    family.add_metric([kind], int(value))
                    counted.add(kind)
            # Every kind from the start: a series that appears at its first tick hides
            # that tick from rate() and increase().
            for kind in MailKind:
                if kind not in counted:
                    family.add_metric([kind], 0)
            yield family

    def _latency(self, raw):
        family = HistogramMetricFamily(
            "gobarber_mail_cancel_to_accepted_seconds",
            "Time from the cancel to the SMTP server accepting the mail",
            labels=["kind"],
        )
        for kind in sorted({field.split("|", 1)[0] for field in raw}):
            cumulative, buckets = 0, []
            for bound in LATENCY_BUCKETS:
                cumulative += int(raw.get(f"{kind}|{bound}", 0))
                buckets.append(("+Inf" if bound == math.inf else str(bound), cumulative))
            family.add_metric([kind], buckets, float(raw.get(f"{kind}|sum", 0)))
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
            "scheduled": GaugeMetricFamily(
                "gobarber_mail_retries_waiting",
                "Mails waiting off their stream for their time: retries after a failed "
                "attempt, and scheduled mails",
                labels=["priority"],
            ),
            "oldest_pending_age_s": GaugeMetricFamily(
                "gobarber_mail_oldest_pending_age_seconds",
                "Age of the oldest pending entry",
                labels=["priority"],
            ),
        }
        streams = self.queue.stream_states()
        for state in self.queue.state(states=streams):
            for name, family in gauges.items():
                family.add_metric([state["priority"]], float(state[name] or 0))
        yield from gauges.values()
        # Summed above; each shard's own backlog shows one that is stuck or hot.
        backlog = GaugeMetricFamily(
            "gobarber_mail_shard_backlog",
            "Entries of a shard not yet acknowledged: waiting for a worker, pending, or "
            "waiting off their stream for their time",
            labels=["shard", "state"],
        )
        for shard in self.queue.shard_states(streams):
            for state in ("lag", "pending", "scheduled"):
                backlog.add_metric([str(shard["shard"]), state], shard[state])
        yield backlog
        dead = GaugeMetricFamily("gobarber_mail_dead_letters", "Entries in the dead-letter stream")
        dead.add_metric([], self.queue.dead_count())
        yield dead

    def _from_outbox(self, name, query):
        # The outbox rows, not the streams: a held mail is never published, a scheduled
        # one waits outside its stream. A database that does not answer costs this one
        # gauge, not the scrape.
        try:
            return db.session.execute(query).all()
        except SQLAlchemyError as error:
            db.session.rollback()
            log.warning("%s skipped: the database does not answer (%s)", name, error)
            return None

    def _held(self):
        query = select(func.count()).where(MailDelivery.status == DeliveryStatus.HELD)
        rows = self._from_outbox("gobarber_mail_held", query)
        if rows is None:
            return
        held = GaugeMetricFamily(
            "gobarber_mail_held", "Cancellation mails held for an operator's release"
        )
        held.add_metric([], rows[0][0])
        yield held

    def _scheduled(self):
        query = (
            select(MailDelivery.kind, func.count(), func.min(MailDelivery.due_at))
            .where(MailDelivery.status == DeliveryStatus.QUEUED, MailDelivery.due_at > now())
            .group_by(MailDelivery.kind)
        )
        rows = self._from_outbox("gobarber_mail_scheduled", query)
        if rows is None:
            return
        scheduled = GaugeMetricFamily(
            "gobarber_mail_scheduled",
            "Mails queued to go at a later time (reminders), not yet due",
            labels=["kind"],
        )
        next_due = GaugeMetricFamily(
            "gobarber_mail_next_due_timestamp_seconds",
            "When the next scheduled mail of a kind is due (Unix time)",
            labels=["kind"],
        )
        counts = dict.fromkeys(map(str, MailKind), 0)
        for kind, count, earliest in rows:
            counts[kind] = count
            next_due.add_metric([kind], earliest.timestamp())
        for kind, count in counts.items():
            scheduled.add_metric([kind], count)
        yield scheduled
        yield next_due
