"""The reaper: recovers what dead workers left pending, and relays the outbox.

Run it with `python -m consumers.reaper` (a loop) or `--once` (one pass, for a cron).
Each pass XAUTOCLAIMs entries idle longer than the visibility timeout and puts them back
at the end of their stream for any worker (the redelivery count travels in the entry), or
dead-letters those that keep failing. Then it publishes outbox rows that never reached
Redis and rows whose entry Redis lost. Several reapers may run: XAUTOCLAIM hands an
entry to one of them, and the per-event send lock keeps workers from sending it twice.
"""

import logging

from sqlalchemy import select

from consumers.loop import main
from consumers.worker import default_name
from gobarber.extensions import db
from gobarber.mail import outbox, streams
from gobarber.mail.delivery import Outcome, finish, mark_dead, parse_entries
from gobarber.mail.queue import requeue_entries
from gobarber.models import MailDelivery
from gobarber.models.mail_delivery import FAILED, QUEUED, SENT

log = logging.getLogger("consumers.reaper")  # not __main__ under `python -m`


class Reaper:
    """`loop()` is one pass: reclaim every stream, relay the outbox, then rest."""

    def __init__(self, app, *, stop, name=None):
        self.app = app
        self.stop = stop
        self.name = name or default_name(app, "reaper")
        self.client = app.extensions["redis"]
        config = app.config
        self.visibility_ms = config["MAIL_VISIBILITY_TIMEOUT"] * 1000
        self.max_attempts = config["MAIL_MAX_ATTEMPTS"]
        self.batch = config["REAPER_BATCH_SIZE"]
        self.interval = config["REAPER_INTERVAL"]
        self.passes = 0
        self.redis_keys = streams.Keys.of(app)
        self.stream_keys = self.redis_keys.streams
        self.group = self.redis_keys.group

    def initialize(self):
        streams.ensure_groups(self.client, self.redis_keys)
        log.info(
            "reaper %s watching %s (visibility %ds)",
            self.name,
            self.stream_keys,
            self.visibility_ms // 1000,
        )

    def loop(self):
        if self.passes:
            self.stop.wait(self.interval)
        self.passes += 1
        reclaimed = sum(self.reclaim(key) for key in self.stream_keys)
        relayed = self.relay()
        if reclaimed or relayed:
            log.info("reaper %s: %d reclaimed, %d relayed", self.name, reclaimed, relayed)

    def shutdown(self):
        log.info("reaper %s stopped", self.name)

    def reclaim(self, key):
        """Take every entry of `key` idle past the visibility timeout; return how many."""
        cursor, total = "0-0", 0
        while not self.stop.is_set():
            reply = self.client.xautoclaim(
                key, self.group, self.name, self.visibility_ms, start_id=cursor, count=self.batch
            )
            # Redis 7 adds a third element: ids that were pending but deleted from the stream.
            cursor, claimed = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            entries = parse_entries(key, claimed)
            with self.app.app_context():
                self._recover(key, entries, deleted)
            total += len(entries) + len(deleted)
            if cursor in ("0-0", "0"):
                return total
        return total

    def relay(self):
        with self.app.app_context():
            config = self.app.config
            return outbox.relay(
                unpublished_after=config["MAIL_RELAY_AFTER"],
                republish_after=config["MAIL_REPUBLISH_AFTER"],
                client=self.client,
            )

    def _recover(self, key, entries, deleted):
        outcome = Outcome()
        rows = self._statuses([e.event_id for e in entries if e.has_valid_event_id])
        back = []
        for entry in entries:
            row = rows.get(entry.event_id)
            if entry.fields is None:
                outcome.done.append(entry)  # Redis 6.2 reports a deleted entry this way
            elif not entry.has_valid_event_id:
                outcome.dead.append((entry, f"unreadable entry: {entry.fields!r}"[:500]))
            elif row is None:
                outcome.dead.append((entry, "no delivery recorded for this event"))
            elif row.status == SENT:
                outcome.done.append(entry)
            elif row.status == FAILED:
                outcome.dead.append((entry, row.last_error or "failed"))
            elif entry.redeliveries + 1 >= self.max_attempts or row.attempts >= self.max_attempts:
                reason = row.last_error or f"gave up after {entry.redeliveries + 1} deliveries"
                mark_dead(self._delivery(entry.event_id), reason)
                outcome.dead.append((entry, reason))
            else:
                back.append(entry)
        db.session.commit()
        if back:
            moved = requeue_entries(
                self.client,
                self.redis_keys,
                key,
                [(entry.entry_id, entry.fields) for entry in back],
            )
            for event_id, new_id in moved:
                log.info(
                    "mail event %s reclaimed from a silent consumer; requeued as %s",
                    event_id,
                    new_id,
                )
            outbox.record_entry_ids(moved)
            db.session.commit()
        finish(self.client, self.redis_keys, outcome)
        if deleted:
            self._republish_deleted(deleted)

    def _statuses(self, event_ids):
        """What the reaper decides on, as plain columns: no ORM objects for thousands."""
        if not event_ids:
            return {}
        query = select(
            MailDelivery.event_id,
            MailDelivery.status,
            MailDelivery.attempts,
            MailDelivery.last_error,
        ).where(MailDelivery.event_id.in_(event_ids))
        return {row.event_id: row for row in db.session.execute(query)}

    def _delivery(self, event_id):
        return db.session.scalar(select(MailDelivery).where(MailDelivery.event_id == event_id))

    def _republish_deleted(self, deleted_ids):
        """Entries Redis deleted while pending: publish their still-queued rows again."""
        query = select(MailDelivery).where(
            MailDelivery.stream_entry_id.in_(deleted_ids), MailDelivery.status == QUEUED
        )
        for row in db.session.scalars(query):
            log.warning("mail event %s was deleted while pending; publishing again", row.event_id)
            outbox.publish(row, self.client)


def build(app, *, stop, name=None):
    return Reaper(app, stop=stop, name=name)


if __name__ == "__main__":
    main("reaper", build, "Recover stuck GoBarber mail entries and relay the outbox.")
