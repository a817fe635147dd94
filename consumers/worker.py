"""The mail worker: reads the priority streams as one consumer of the group and sends.

Run it with `python -m consumers.worker [--name NAME]`. Give every worker a stable name
(`--name` or MAIL_CONSUMER_NAME): a restarted worker first re-reads what it left pending.
"""

import logging
import time

from consumers.loop import consumer_name, main
from gobarber.extensions import db, mail_queue
from gobarber.mail import outbox
from gobarber.mail.delivery import Deliverer
from gobarber.mail.heartbeats import Heartbeats
from gobarber.services.notifications import notify

log = logging.getLogger("consumers.worker")  # not __main__ under `python -m`

# How often a worker looks for retries that other workers scheduled; its own it knows.
DUE_CHECK_S = 1.0


class MailWorker:
    """One consumer of the mail group; `loop()` is one read-and-deliver pass."""

    def __init__(self, app, *, stop, name=None):
        self.app = app
        self.stop = stop
        self.name = name or consumer_name(app, "worker")
        self.heartbeats = Heartbeats(app)
        self.queue = mail_queue.get(app)
        self.batch = app.config["MAIL_BATCH_SIZE"]
        self.block_ms = app.config["MAIL_BLOCK_MS"]
        self.history = self.queue.own_pending(self.name)  # read before anything new
        self.check_due_at = 0.0  # monotonic time to look for due retries next
        self.deliverer = Deliverer(
            app, queue=self.queue, consumer=self.name, notify=notify, should_stop=stop.is_set
        )

    def reconnect(self):
        """Drop every Redis connection; the next command opens a fresh one."""
        self.queue.reconnect()

    def initialize(self):
        self.queue.ensure_group()
        # Also after an error: a batch whose settling failed (a slot moving, a failover)
        # is still this consumer's, and is read again before anything new.
        self.history = self.queue.own_pending(self.name)
        log.info(
            "worker %s reading %s as group %s", self.name, self.queue.stream_keys, self.queue.group
        )

    def loop(self):
        self.heartbeats.beat(self.name)
        entries = self._next_entries()
        if entries:
            outcome = self.deliverer.deliver(entries, more=self._more_entries)
            if outcome.later:
                soonest = min(delay for _, delay in outcome.later)
                self.check_due_at = min(self.check_due_at, time.monotonic() + soonest)

    def shutdown(self):
        self.deliverer.close()
        self.heartbeats.stop(self.name)
        log.info("worker %s stopped", self.name)

    def _next_entries(self, count=None, *, wait=True):
        """This consumer's own pending entries first, then retries that are due, then new
        ones; waiting for new ones only with `wait` (the deliverer asks for more while its
        sessions are sending, and must not wait)."""
        count = count or self.batch
        if not self.history.exhausted:
            entries = self.history.read(count)
            if entries:
                return entries
        self._release_due()
        return self.queue.read_new(
            self.name,
            count=count,
            block_ms=self._block_ms() if wait else None,
            lock_ms=self.deliverer.lock_ms,  # the send locks, in the read's round trip
        )

    def _more_entries(self, count):
        return self._next_entries(count, wait=False)

    def _release_due(self):
        """Put retries that are due back on the streams, where any worker reads them."""
        if time.monotonic() < self.check_due_at:
            return
        moved, wait_s = self.queue.release_due(count=self.batch)
        if moved:
            with self.app.app_context():
                outbox.record_entry_ids(moved)
                db.session.commit()
        next_check = DUE_CHECK_S if wait_s is None else min(DUE_CHECK_S, wait_s)
        self.check_due_at = time.monotonic() + next_check

    def _block_ms(self):
        wait_ms = int((self.check_due_at - time.monotonic()) * 1000)
        return max(1, min(self.block_ms, wait_ms))


def build(app, *, stop, name=None):
    return MailWorker(app, stop=stop, name=name)


if __name__ == "__main__":
    main("worker", build, "Send GoBarber's mails from the Redis streams.")
