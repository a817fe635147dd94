"""Benchmark 6, memory: Redis memory and stream lengths before and after N events.

On a private redis-server, N events shaped like the pipeline's entries are XADDed in
chunks of 1,000 and each chunk drained by the worker's read-lock-settle machinery (the
no-op MailWorker of the queue benchmark: XREADGROUP, SET NX lock, XACK + XDEL + DEL).
`used_memory` is read before, after every chunk (the peak) and after; the streams'
lengths, pending counts and leftover lock keys are read after. Bounded means: nothing left
behind, and memory back near where it started whatever N is.
"""

from queue_overhead import NoopWorker, fill
from report import figure, ratio, result
from system import system

from consumers.loop import Stop
from gobarber.mail.queue import Priority

CHUNK = 1000


def used(client):
    return client.info("memory")["used_memory"]


def run(*, full, workdir):
    total = 100_000 if full else 20_000
    res = result(
        "memory",
        "6. Redis memory across events",
        f"{total:,} events through the streams in chunks of {CHUNK:,}, each chunk drained by "
        "the worker's read/lock/ack/delete; INFO used_memory before, peak and after.",
    )
    with system(workdir / "memory", MAIL_BATCH_SIZE=50) as sys_:
        queue = sys_.queue
        client = queue.redis
        queue.ensure_group()
        worker = NoopWorker(sys_.app, stop=Stop(), name="bench-memory")
        worker.initialize()
        before, peak = used(client), 0
        lengths_before = {key: client.xlen(key) for key in queue.stream_keys}
        for start in range(0, total, CHUNK):
            fill(client, queue.stream_key(Priority.DEFAULT), min(CHUNK, total - start))
            peak = max(peak, used(client))
            while worker.settled < start + min(CHUNK, total - start):
                worker.loop()
        after = used(client)
        lengths = {key: client.xlen(key) for key in queue.stream_keys}
        pending = sum(client.xpending(key, queue.group)["pending"] for key in queue.stream_keys)
        locks = sum(1 for _ in client.scan_iter(match=queue.lock_key("*"), count=1000))
        stream_bytes = sum(client.memory_usage(key) or 0 for key in queue.stream_keys)
    figure(res, "used_memory before", before / 1024, "KiB")
    figure(res, "used_memory peak (a chunk of 1,000 waiting)", peak / 1024, "KiB")
    figure(res, "used_memory after", after / 1024, "KiB")
    figure(res, "stream lengths before", sum(lengths_before.values()), "entries")
    figure(res, "stream lengths after", sum(lengths.values()), "entries", str(lengths))
    figure(res, "pending after", pending, "entries")
    figure(res, "send locks left", locks, "keys")
    figure(res, "MEMORY USAGE of the streams after", stream_bytes / 1024, "KiB")
    ratio(
        res,
        "entries + pending + locks left after",
        sum(lengths.values()) + pending + locks,
        0,
        at_least=False,
    )
    ratio(res, "used_memory after / before", after / before, 1.5, at_least=False)
    return res
