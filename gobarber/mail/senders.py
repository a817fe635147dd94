"""A worker's SMTP senders: threads, each with one SMTP session kept open from mail to mail.

The Deliverer (the worker's main thread) reads the rows, renders the messages and hands
them over as `Job`s; a sender only talks to the SMTP server and hands the job back with
its result. Sending is mostly waiting on the server, so threads carry it well: with
`MAIL_CONCURRENCY` sessions a provider that takes 100 ms a message accepts up to ten
times that many mails a second. One session failing (a refused connection, a timeout)
fails only its own job; its next job opens a new connection. Once the worker is
stopping, a sender hands back the jobs it takes unsent.

High-priority jobs go before default ones still waiting. A sender idle for
`IDLE_CLOSE_S` closes its session and ends, so a quiet worker holds no connection an
SMTP server would drop under it; the next job starts a sender again.
"""

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field

from gobarber.mail import smtp

# An SMTP server drops an idle connection after a while (Postfix: 5 minutes); a sender
# closes its own well before that rather than find a dead one at the next mail.
IDLE_CLOSE_S = 10.0


@dataclass(eq=False)
class Job:
    """One mail to send, and what became of it."""

    entry: object  # the stream entry
    delivery_id: int
    message: object  # the rendered message, as `smtp.Outgoing`
    urgent: bool = False
    error: Exception | None = None
    unsent: bool = False  # the worker was stopping when a sender took it: left pending
    started: float = 0.0  # time.monotonic() around the send
    finished: float = 0.0
    _order: int = field(default=0, repr=False)

    def __lt__(self, other):  # the work queue's order: urgent first, then as handed over
        return (not self.urgent, self._order) < (not other.urgent, other._order)

    @property
    def duration(self):
        return self.finished - self.started


class Senders:
    """Up to `size` sender threads sharing one work queue, urgent jobs first."""

    def __init__(self, app, size, *, should_stop=lambda: False):
        self.app = app
        self.size = size
        self.should_stop = should_stop
        self._work = queue.PriorityQueue()
        self._done = queue.SimpleQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._alive = 0
        self._outstanding = 0  # jobs submitted and not yet handed back or taken back

    def submit(self, job):
        job._order = next(self._order)
        with self._lock:
            self._outstanding += 1
            self._work.put(job)
            while self._alive < min(self.size, self._outstanding):
                self._alive += 1
                threading.Thread(target=self._run, name="mail-sender", daemon=True).start()

    def finished(self, timeout):
        """Jobs sent (or failed) since the last call: waits up to `timeout` seconds for
        the first, then takes whatever else is done."""
        try:
            jobs = [self._done.get(timeout=timeout) if timeout > 0 else self._done.get_nowait()]
        except queue.Empty:
            return []
        while True:
            try:
                jobs.append(self._done.get_nowait())
            except queue.Empty:
                return jobs

    def take_unstarted(self):
        """Remove and return the jobs no sender has taken yet (a stopping worker leaves
        them pending, unsent)."""
        jobs = []
        with self._lock:
            while True:
                try:
                    jobs.append(self._work.get_nowait())
                except queue.Empty:
                    self._outstanding -= len(jobs)
                    return jobs

    def _run(self):
        session = smtp.SmtpSession(self.app)
        try:
            while (job := self._next()) is not None:
                job.started = time.monotonic()
                if self.should_stop():
                    job.unsent = True  # a stopping worker starts no new send
                else:
                    try:
                        session.send(job.message)
                    except Exception as error:  # noqa: BLE001 - the Deliverer decides
                        job.error = error
                job.finished = time.monotonic()
                with self._lock:
                    self._outstanding -= 1
                self._done.put(job)
        finally:
            session.close()

    def _next(self):
        """The next job; None once idle long enough to end this sender."""
        while True:
            try:
                job = self._work.get(timeout=IDLE_CLOSE_S)
            except queue.Empty:
                with self._lock:
                    if self._work.empty():
                        self._alive -= 1
                        return None
                continue
            return job
