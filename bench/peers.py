"""No-op workers of Celery, RQ and Dramatiq on one Redis: `peers.py KIND REDIS_URL N`.

Each run enqueues N no-op jobs first (not timed), then starts one worker in this process
and times from the first job handled to the N-th, printing one JSON line with the rate.
Every peer runs as its documentation's minimal no-op setup, results not stored.
"""

import json
import os
import sys
import time

state = {"first": None, "count": 0, "total": 0}


def tick():
    """Count a handled job; at the last one print the rate and leave at once."""
    now = time.perf_counter()
    if state["first"] is None:
        state["first"] = now
    state["count"] += 1
    if state["count"] == state["total"]:
        seconds = now - state["first"]
        rate = (state["total"] - 1) / seconds if seconds > 0 else None
        print(json.dumps({"seconds": seconds, "rate": rate, "jobs": state["total"]}), flush=True)
        os._exit(0)


def celery(url, total):
    from celery import Celery

    app = Celery("bench", broker=url)
    app.conf.update(
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )

    @app.task(name="noop")
    def noop():
        tick()

    for _ in range(total):
        noop.delay()
    worker = app.Worker(
        pool="solo",
        concurrency=1,
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        quiet=True,
    )
    worker.start()


def noop_job():
    tick()


def rq(url, total):
    from redis import Redis
    from rq import Queue, SimpleWorker

    connection = Redis.from_url(url)
    queue = Queue("bench", connection=connection)
    for start in range(0, total, 1000):
        batch = [
            Queue.prepare_data(noop_job, result_ttl=0) for _ in range(min(1000, total - start))
        ]
        queue.enqueue_many(batch)
    # SimpleWorker: no fork per job (the default Worker forks, and is far slower).
    SimpleWorker([queue], connection=connection).work(burst=True, logging_level="WARNING")


def dramatiq(url, total):
    import dramatiq as dq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url)
    dq.set_broker(broker)

    @dq.actor(max_retries=0, queue_name="bench")
    def noop():
        tick()

    for _ in range(total):
        noop.send()
    worker = dq.Worker(broker, worker_threads=1)
    worker.start()
    while True:
        time.sleep(1)


if __name__ == "__main__":
    kind, redis_url, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    state["total"] = jobs
    {"celery": celery, "rq": rq, "dramatiq": dramatiq}[kind](redis_url, jobs)
