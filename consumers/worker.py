"""The mail worker: reads the priority streams as one consumer of the group and sends.

Run it with `python -m consumers.worker [--name NAME]`. Give every worker a stable name
(`--name` or MAIL_CONSUMER_NAME): a restarted worker first re-reads what it left pending.
"""

import logging
import socket
import time

from consumers.loop import main
from gobarber.mail import streams
from gobarber.mail.delivery import Deliverer, parse_entries

log = logging.getLogger("consumers.worker")  # not __main__ under `python -m`

# How long to wait before looking again at an entry another consumer was sending.
BUSY_RETRY_S = 5.0


def default_name(app, kind):
    """A name that survives restarts of the same process slot on the same host."""
    return app.config.get("MAIL_CONSUMER_NAME") or f"{socket.gethostname()}-{kind}"


class MailWorker:
    """One consumer of the mail group; `loop()` is one read-and-deliver pass."""

    def __init__(self, app, *, stop, name=None):
        self.app = app
        self.stop = stop
        self.name = name or default_name(app, "worker")
        self.client = app.extensions["redis"]
        self.batch = app.config["MAIL_BATCH_SIZE"]
        self.block_ms = app.config["MAIL_BLOCK_MS"]
        self.redis_keys = streams.Keys.of(app)
        self.stream_keys = self.redis_keys.streams
        self.group = self.redis_keys.group
        self.history = {key: "0" for key in self.stream_keys}  # own pending entries, read first
        self.retry_at = {}  # (stream, entry id) -> monotonic time it is due
        self.read_by_priority = self.client.register_script(streams.READ_BY_PRIORITY)
        self.deliverer = Deliverer(
            app, consumer=self.name, client=self.client, should_stop=stop.is_set
        )

    def initialize(self):
        streams.ensure_groups(self.client, self.redis_keys)
        log.info("worker %s reading %s as group %s", self.name, self.stream_keys, self.group)

    def loop(self):
        entries = self._next_entries()
        if entries:
            self._settle(self.deliverer.deliver(entries))

    def shutdown(self):
        log.info(
            "worker %s stopped; %d entries left pending for a retry", self.name, len(self.retry_at)
        )

    def _next_entries(self):
        if self.history:
            entries = self._own_history()
            if entries:
                return entries
        return self._due_retries() or self._read_new()

    def _own_history(self):
        """Re-read what this consumer name left pending before it last stopped."""
        reply = self.client.xreadgroup(self.group, self.name, self.history, count=self.batch)
        entries = []
        for key, messages in reply:
            if messages:
                self.history[key] = messages[-1][0]
                entries += parse_entries(key, messages)
        for key in [key for key, messages in reply if not messages]:
            del self.history[key]
        if not reply:
            self.history.clear()
        return entries

    def _due_retries(self):
        now = time.monotonic()
        due = [key for key, when in self.retry_at.items() if when <= now]
        entries = []
        for stream in {stream for stream, _ in due}:
            ids = [entry_id for key, entry_id in due if key == stream]
            for entry_id in ids:
                del self.retry_at[(stream, entry_id)]
            # Claiming again resets the idle time, so the reaper leaves a live retry alone.
            claimed = self.client.xclaim(stream, self.group, self.name, 0, ids)
            entries += parse_entries(stream, claimed)
        return entries

    def _read_new(self):
        waiting = self.read_by_priority(
            keys=self.stream_keys, args=[self.group, self.name, self.batch]
        )
        if waiting:
            [(key, messages)] = waiting
            # A script's reply is raw: each entry's fields come as a flat list.
            return parse_entries(
                key, [(i, dict(zip(f[::2], f[1::2], strict=True))) for i, f in messages]
            )
        # Nothing waiting anywhere: block on every stream, high first in the reply.
        streams_ids = {key: ">" for key in self.stream_keys}
        reply = self.client.xreadgroup(
            self.group, self.name, streams_ids, count=self.batch, block=self._block_ms()
        )
        order = {key: index for index, key in enumerate(self.stream_keys)}
        entries = []
        for key, messages in sorted(reply or [], key=lambda item: order.get(item[0], 99)):
            entries += parse_entries(key, messages)
        return entries

    def _block_ms(self):
        if not self.retry_at:
            return self.block_ms
        wait = (min(self.retry_at.values()) - time.monotonic()) * 1000
        return max(1, min(self.block_ms, int(wait)))

    def _settle(self, outcome):
        now = time.monotonic()
        for entry, delay in outcome.retry:
            self.retry_at[(entry.stream, entry.entry_id)] = now + delay
        if not self.stop.is_set():
            for entry in outcome.left:
                self.retry_at[(entry.stream, entry.entry_id)] = now + BUSY_RETRY_S


def build(app, *, stop, name=None):
    return MailWorker(app, stop=stop, name=name)


if __name__ == "__main__":
    main("worker", build, "Send GoBarber's mails from the Redis streams.")
