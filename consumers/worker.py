"""The mail worker: reads the priority streams as one consumer of the group and sends.

Run it with `python -m consumers.worker [--name NAME]`. Give every worker a stable name
(`--name` or MAIL_CONSUMER_NAME): a restarted worker first re-reads what it left pending.
"""

import logging
import time

from consumers.loop import consumer_name, main
from gobarber.extensions import mail_queue
from gobarber.mail.delivery import Deliverer
from gobarber.services.notifications import notify

log = logging.getLogger("consumers.worker")  # not __main__ under `python -m`

# How long to wait before looking again at an entry another consumer was sending.
BUSY_RETRY_S = 5.0


class MailWorker:
    """One consumer of the mail group; `loop()` is one read-and-deliver pass."""

    def __init__(self, app, *, stop, name=None):
        self.app = app
        self.stop = stop
        self.name = name or consumer_name(app, "worker")
        self.queue = mail_queue.get(app)
        self.batch = app.config["MAIL_BATCH_SIZE"]
        self.block_ms = app.config["MAIL_BLOCK_MS"]
        self.history = self.queue.own_pending(self.name)  # read before anything new
        self.retry_at = {}  # entry -> monotonic time it is due
        self.deliverer = Deliverer(
            app, queue=self.queue, consumer=self.name, notify=notify, should_stop=stop.is_set
        )

    def initialize(self):
        self.queue.ensure_group()
        log.info(
            "worker %s reading %s as group %s", self.name, self.queue.stream_keys, self.queue.group
        )

    def loop(self):
        entries = self._next_entries()
        if entries:
            self._schedule(self.deliverer.deliver(entries))

    def shutdown(self):
        log.info(
            "worker %s stopped; %d entries left pending for a retry", self.name, len(self.retry_at)
        )

    def _next_entries(self):
        if not self.history.exhausted:
            entries = self.history.read(self.batch)
            if entries:
                return entries
        return self._due_retries() or self.queue.read_new(
            self.name, count=self.batch, block_ms=self._block_ms()
        )

    def _due_retries(self):
        current = time.monotonic()
        due = [entry for entry, when in self.retry_at.items() if when <= current]
        for entry in due:
            del self.retry_at[entry]
        # Claiming again resets the idle time, so the reaper leaves a live retry alone.
        return self.queue.claim(self.name, due) if due else []

    def _block_ms(self):
        if not self.retry_at:
            return self.block_ms
        wait = (min(self.retry_at.values()) - time.monotonic()) * 1000
        return max(1, min(self.block_ms, int(wait)))

    def _schedule(self, outcome):
        current = time.monotonic()
        for entry, delay in outcome.retry:
            self.retry_at[entry] = current + delay
        if not self.stop.is_set():
            for entry in outcome.left:
                self.retry_at[entry] = current + BUSY_RETRY_S


def build(app, *, stop, name=None):
    return MailWorker(app, stop=stop, name=name)


if __name__ == "__main__":
    main("worker", build, "Send GoBarber's mails from the Redis streams.")
