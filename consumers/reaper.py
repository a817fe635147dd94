"""The reaper: recovers what dead workers left pending, and relays the outbox.

Run it with `python -m consumers.reaper` (a loop) or `--once` (one pass, for a cron).
Each pass takes the entries idle longer than the visibility timeout and puts them back
at the end of their stream for any worker (the redelivery count travels in the entry), or
dead-letters those that keep failing. Then it publishes outbox rows that never reached
Redis and rows whose entry Redis lost. Several reapers may run: Redis hands an idle
entry to one of them, and the per-event send lock keeps workers from sending it twice.
"""

import logging

from consumers.loop import consumer_name, main
from gobarber import metrics
from gobarber.extensions import db, mail_queue
from gobarber.mail import outbox
from gobarber.mail.delivery import Recovery
from gobarber.services.notifications import notify

log = logging.getLogger("consumers.reaper")  # not __main__ under `python -m`


class Reaper:
    """`loop()` is one pass: reclaim every stream, relay the outbox, then rest."""

    def __init__(self, app, *, stop, name=None):
        self.app = app
        self.stop = stop
        self.name = name or consumer_name(app, "reaper")
        self.queue = mail_queue.get(app)
        self.recovery = Recovery(app, queue=self.queue, notify=notify)
        config = app.config
        self.visibility_ms = config["MAIL_VISIBILITY_TIMEOUT"] * 1000
        self.batch = config["REAPER_BATCH_SIZE"]
        self.interval = config["REAPER_INTERVAL"]
        self.passes = 0

    def reconnect(self):
        """Drop every Redis connection; the next command opens a fresh one."""
        self.queue.reconnect()

    def initialize(self):
        self.queue.ensure_group()
        log.info(
            "reaper %s watching %s (visibility %ds)",
            self.name,
            self.queue.stream_keys,
            self.visibility_ms // 1000,
        )

    def loop(self):
        if self.passes:
            self.stop.wait(self.interval)
        self.passes += 1
        with metrics.batched():  # the pass's counts in one round trip
            reclaimed = self.reclaim()
            released = self.release_due()
            relayed = self.relay()
        if reclaimed or released or relayed:
            log.info(
                "reaper %s: %d reclaimed, %d retries due, %d relayed",
                self.name,
                reclaimed,
                released,
                relayed,
            )

    def shutdown(self):
        log.info("reaper %s stopped", self.name)

    def reclaim(self):
        """Take every entry idle past the visibility timeout; return how many."""
        total = 0
        batches = self.queue.reclaim_idle(
            self.name, min_idle_ms=self.visibility_ms, count=self.batch
        )
        for entries, deleted in batches:
            with self.app.app_context():
                moved = self.recovery.recover(entries)
                outbox.record_entry_ids(moved)
                if deleted:
                    outbox.republish_lost(deleted, self.queue)
                db.session.commit()
            total += len(entries) + len(deleted)
            if self.stop.is_set():
                break
        return total

    def release_due(self):
        """Put retries that are due back on the streams (workers do too); return how many."""
        moved, _ = self.queue.release_due(count=self.batch)
        if moved:
            with self.app.app_context():
                outbox.record_entry_ids(moved)
                db.session.commit()
        return len(moved)

    def relay(self):
        with self.app.app_context():
            config = self.app.config
            return outbox.relay(
                unpublished_after=config["MAIL_RELAY_AFTER"],
                republish_after=config["MAIL_REPUBLISH_AFTER"],
                queue=self.queue,
            )


def build(app, *, stop, name=None):
    return Reaper(app, stop=stop, name=name)


if __name__ == "__main__":
    main("reaper", build, "Recover stuck GoBarber mail entries and relay the outbox.")
