"""Benchmark 2, queue overhead: the consumer loop with a handler that does nothing.

The pipeline's loop is the real MailWorker (`consumers/worker.py`) with the real
Deliverer (`gobarber/mail/delivery.py`), whose per-entry handling is replaced by "done":
what is left is the worker's read (one script call: XREADGROUP on the high stream, the
default one only when high is empty, and the per-event send locks, SET NX PX, in the same
call) and the settle step (MULTI: XACK + XDEL + DEL of the locks). Against it, on the
same private Redis with the same backlog:
(a) a bare redis-py loop, XREADGROUP COUNT n then one XACK a batch: the limit for Python;
(b) Bee-Queue (npm) at concurrency 1 and 10; (c) Celery, RQ and Dramatiq no-op workers.
The pipeline's bookkeeping per event (the delivery row read, the render's reads, the
"sent" commit) is measured on its own, with the SMTP send replaced by nothing.
"""

import json
import re
import subprocess
import sys
import time
import types
import uuid
from unittest import mock

from report import figure, note, ratio, result
from sqlalchemy import event
from system import BENCH, system

from consumers.loop import Stop
from consumers.worker import MailWorker
from gobarber.extensions import db
from gobarber.mail import smtp as smtp_module
from gobarber.mail.delivery import Deliverer
from gobarber.mail.queue import Priority

FIELDS = {"kind": "cancellation", "appointment_id": "1", "created_at": "0"}


class NoopDeliverer(Deliverer):
    """The real Deliverer, with the handling of an entry reduced to "done"."""

    settled = 0

    def _rows(self, entries, settled):
        return {}

    def _handle(self, entry, rows, outcome):
        outcome.acked.append(entry)

    def deliver(self, entries, more=None):
        outcome = super().deliver(entries, more)
        self.settled += len(outcome.acked)
        return outcome


class NoopWorker(MailWorker):
    """The real MailWorker reading and settling through the no-op Deliverer."""

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.deliverer = NoopDeliverer(
            app,
            queue=self.queue,
            consumer=self.name,
            notify=self.deliverer.notify,
            should_stop=self.stop.is_set,
        )

    @property
    def settled(self):
        """Entries acknowledged so far."""
        return self.deliverer.settled


def fill(client, stream, total, *, fields=None):
    """XADD `total` entries shaped like the pipeline's, 1000 a round trip."""
    for start in range(0, total, 1000):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(1000, total - start)):
            pipe.xadd(stream, {"event_id": str(uuid.uuid4()), **(fields or FIELDS)})
        pipe.execute()


def pipeline_loop(sys_, total):
    """Drain `total` entries with the no-op MailWorker; return (seconds, batches)."""
    queue = sys_.queue
    queue.ensure_group()
    fill(queue.redis, queue.stream_key(Priority.DEFAULT), total)
    worker = NoopWorker(sys_.app, stop=Stop(), name="bench-noop")
    worker.initialize()
    started, passes = time.perf_counter(), 0
    while worker.settled < total:
        worker.loop()
        passes += 1
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"the no-op worker settled {worker.settled} of {total} in 600s")
    return time.perf_counter() - started, passes


def bare_loop(sys_, total, batch):
    """XREADGROUP COUNT `batch` + one XACK, written plainly: the limit for Python."""
    client = sys_.redis_client
    stream, group = "bare:stream", "bare"
    client.xgroup_create(stream, group, id="0", mkstream=True)
    fill(client, stream, total)
    started, done = time.perf_counter(), 0
    while done < total:
        reply = client.xreadgroup(group, "bare-1", {stream: ">"}, count=batch, block=200)
        for key, messages in reply:
            if messages:
                client.xack(key, group, *[entry_id for entry_id, _ in messages])
                done += len(messages)
    seconds = time.perf_counter() - started
    client.delete(stream)
    return seconds


def _json_line(text):
    found = re.search(r"\{\"seconds\".*\}", text)
    return json.loads(found.group(0)) if found else None


def peer(command, timeout):
    """Run a peer's script; return its JSON figures or the error it printed."""
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=BENCH,
            env={"C_FORCE_ROOT": "1", "PATH": "/usr/bin:/bin"},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    figures = _json_line(done.stdout + done.stderr)
    if figures is None:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or "no output"}
    return figures


class NullSmtp:
    """Stands in for the SMTP session: the network is not part of the bookkeeping, the
    message's bytes are. The sender threads get them built (`smtp.Outgoing`); the
    Deliverer before batching passed the message, whose bytes Flask-Mail built inside the
    send, so this builds them for it."""

    def __init__(self, app):
        pass

    def send(self, message):
        if hasattr(message, "as_bytes"):
            message.as_bytes()

    def close(self):
        pass


# The Deliverer as it was before issue 13 (one app context, row read and commit per
# mail): the baseline of the bookkeeping figure, loaded from git in the same run.
BEFORE_BATCHING = "743114c"


def deliverer_before_batching():
    """The Deliverer class of BEFORE_BATCHING, or None when git cannot show it."""
    try:
        source = subprocess.run(
            ["git", "show", f"{BEFORE_BATCHING}:gobarber/mail/delivery.py"],
            capture_output=True,
            text=True,
            check=True,
            cwd=BENCH,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("delivery_before_batching")
    exec(compile(source, "delivery_before_batching.py", "exec"), module.__dict__)  # noqa: S102
    return module


def bookkeeping(sys_, total, before=None):
    """Run the real Deliverer (or, with `before`, the module of BEFORE_BATCHING) with a
    null SMTP session over `total` seeded cancellations: return (seconds, SQL statements)."""
    sys_.cancellations(total)
    app, queue = sys_.app, sys_.queue
    worker = MailWorker(app, stop=Stop(), name="bench-books")
    worker.initialize()
    if before is not None:
        worker.deliverer = before.Deliverer(
            app, queue=queue, consumer=worker.name, notify=worker.deliverer.notify
        )
    statements = []
    with app.app_context():
        engine = db.engine

    def count(*_args):
        statements.append(1)

    # The senders' sessions come from gobarber.mail.smtp; the old module held its own name.
    event.listen(engine, "before_cursor_execute", count)
    try:
        with mock.patch.object(before or smtp_module, "SmtpSession", NullSmtp):
            started, sent = time.perf_counter(), 0
            while sent < total:
                entries = worker._next_entries()
                outcome = worker.deliverer.deliver(entries)
                sent += outcome.sent
            seconds = time.perf_counter() - started
    finally:
        event.remove(engine, "before_cursor_execute", count)
        if before is None:  # the old Deliverer had no senders to close
            worker.shutdown()
    assert queue.redis.xlen(queue.stream_key(Priority.DEFAULT)) == 0
    return seconds, len(statements)


def run(*, full, workdir):
    total = 50_000 if full else 10_000
    books = 5_000 if full else 1_000
    res = result(
        "queue",
        "2. Queue overhead (no-op handler)",
        f"{total:,} entries waiting in one stream before each consumer starts; entries per "
        "second from start (Python loops) or first job (peers) to the last acknowledged. "
        "Same private redis-server for every consumer, one consumer process each.",
    )
    with system(workdir / "queue", MAIL_BATCH_SIZE=50) as sys_:
        batch = sys_.app.config["MAIL_BATCH_SIZE"]
        bare_s = bare_loop(sys_, total, batch)
        bare = figure(
            res,
            f"bare redis-py XREADGROUP COUNT {batch} + XACK",
            total / bare_s,
            "entries/s",
            "written in the benchmark: the limit for Python",
        )
        ours_s, passes = pipeline_loop(sys_, total)
        ours = figure(
            res,
            "pipeline: MailWorker.loop() + Deliverer, handler does nothing",
            total / ours_s,
            "entries/s",
            f"{passes} loop passes of up to {batch}; one read script (high, else default, "
            "with a SET NX PX send lock per event), MULTI XACK+XDEL+DEL a batch",
        )
        url = sys_.redis.url
        bees = {}
        for concurrency in (1, 10):
            got = peer(["node", "beequeue_bench.js", url, str(total), str(concurrency)], 300)
            bees[concurrency] = got.get("rate")
            figure(
                res,
                f"Bee-Queue, concurrency {concurrency}",
                got.get("rate"),
                "entries/s",
                got.get("error", "npm bee-queue, removeOnSuccess, storeJobs off"),
            )
        python = str(BENCH / ".venv" / "bin" / "python")
        python = python if (BENCH / ".venv").exists() else sys.executable
        for kind, how in (
            ("celery", "solo pool, concurrency 1, results ignored, Redis broker"),
            ("rq", "SimpleWorker (no fork per job), burst, result_ttl=0"),
            ("dramatiq", "RedisBroker, 1 worker thread, max_retries=0"),
        ):
            peer_total = total if full else min(total, 5_000)
            got = peer([python, "peers.py", kind, url, str(peer_total)], 600)
            figure(
                res,
                f"{kind} no-op worker",
                got.get("rate"),
                "entries/s",
                got.get("error", f"{how}; {peer_total:,} jobs"),
            )
        books_s, statement_count = bookkeeping(sys_, books)
        book_rate = figure(
            res,
            "pipeline bookkeeping (rows, render, message bytes, sent marks), network skipped",
            books / books_s,
            "events/s",
            f"{books:,} seeded cancellations through the real Deliverer with a null SMTP "
            f"session; {statement_count / books:.1f} SQL statements per event",
        )
        figure(res, "SQL statements per event", statement_count / books, "statements")
        before = deliverer_before_batching()
        if before is None:
            note(res, f"git could not show {BEFORE_BATCHING}: no bookkeeping baseline")
        else:
            # A System of its own: the seeding signs the same people up again.
            with system(workdir / "queue-before", MAIL_BATCH_SIZE=50) as again:
                before_s, before_count = bookkeeping(again, books, before)
            before_rate = figure(
                res,
                "bookkeeping before batching (the Deliverer of issue 13's start)",
                books / before_s,
                "events/s",
                f"git show {BEFORE_BATCHING}:gobarber/mail/delivery.py, same seeding; "
                f"{before_count / books:.1f} SQL statements per event",
            )
            ratio(res, "bookkeeping: batched / before batching", book_rate / before_rate, 4.0)
    ratio(res, "pipeline loop / bare redis-py loop", ours / bare, 0.5)
    best_bee = max((rate for rate in bees.values() if rate), default=None)
    if best_bee:
        ratio(res, "pipeline loop / Bee-Queue at its best concurrency", ours / best_bee, 2.0)
    else:
        note(res, "Bee-Queue did not run; see its figure for the error")
    return res
