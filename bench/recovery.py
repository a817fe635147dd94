"""Benchmark 4, recovery: entries left pending by a consumer that died.

N cancellations are seeded (outbox rows and stream entries); a consumer named
"dead-worker" reads them all with XREADGROUP and never acknowledges (as after a kill -9).
Once they have been idle past the visibility timeout, the real Reaper (consumers/reaper.py)
runs one pass in the benchmark process: XAUTOCLAIM in batches, one outbox read a batch,
requeue (MULTI: XADD copies, XACK + XDEL the old ids), one executemany a batch. Timed:
that pass (entries recovered per second), then, with two real worker processes already
running, the time from the reaper's start until every mail is recorded as sent.
"""

import time

from report import figure, ratio, result
from system import system

from consumers.loop import Stop
from consumers.reaper import Reaper
from gobarber.mail.queue import Priority

VISIBILITY_S = 2


def run(*, full, workdir):
    total = 10_000 if full else 2_000
    res = result(
        "recovery",
        "4. Recovery of a dead consumer's pending entries",
        f"{total:,} entries pending for a consumer that died, idle past the visibility "
        f"timeout ({VISIBILITY_S}s); one reaper pass timed in-process, then two worker "
        "processes deliver what it requeued; delivery end read from the outbox's sent_at.",
    )
    with system(
        workdir / "recovery",
        MAIL_TIMEOUT=1,
        MAIL_VISIBILITY_TIMEOUT=VISIBILITY_S,
        MAIL_RETRY_MAX=1,
        MAIL_BATCH_SIZE=50,
    ) as sys_:
        sys_.cancellations(total)
        queue = sys_.queue
        client = queue.redis
        stream = queue.stream_key(Priority.DEFAULT)
        taken = client.xreadgroup(queue.group, "dead-worker", {stream: ">"}, count=total)
        assert sum(len(messages) for _, messages in taken) == total
        workers = [sys_.processes.worker(f"worker-{n}") for n in (1, 2)]
        time.sleep(VISIBILITY_S + 0.5)
        reaper = Reaper(sys_.app, stop=Stop(), name="reaper-bench")
        reaper.initialize()
        started = time.perf_counter()
        reaper.loop()
        reclaim_s = time.perf_counter() - started
        left = client.xpending(stream, queue.group)
        dead_pending = {c["name"]: c["pending"] for c in left["consumers"]}.get("dead-worker", 0)
        assert dead_pending == 0, f"{dead_pending} entries still pending for the dead consumer"
        delivered_s = sys_.wait_sent(total, timeout=900) + reclaim_s
        assert all(worker.poll() is None for worker in workers)
    rate = figure(
        res,
        "reaper pass: reclaimed and requeued",
        total / reclaim_s,
        "entries/s",
        f"{total:,} entries in {reclaim_s:.2f}s, batches of {reaper.batch}",
    )
    figure(res, "reaper start until all delivered (2 workers)", delivered_s, "s")
    figure(res, "delivered after recovery", total / delivered_s, "mails/s")
    ratio(res, "reaper entries/s / 5,000", rate / 5000, 1.0)
    return res
