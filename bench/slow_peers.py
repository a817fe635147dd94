"""Celery and Dramatiq sending mails to the slow SMTP sink with thread pools:
`slow_peers.py KIND REDIS_URL SMTP_HOST SMTP_PORT N C MESSAGES`.

MESSAGES is a JSON file the benchmark wrote: a list of {"from", "to", "data"} (the
envelope sender, the envelope recipients and the message's bytes, base64), built with
Flask-Mail from the bodies the app rendered, as the sequential loop sends them. Each run
enqueues N tasks first (not timed), task i sending message i (cycling if N is larger),
then starts one worker in this process with C threads: Celery's `threads` pool with
concurrency C, Dramatiq's Worker with worker_threads=C. Each task sends its mail over its
thread's own smtplib connection (threading.local), opened on the thread's first send and
reused; after an error it is dropped and the send tried again on a new one (3 tries).
Each run uses a queue of its own (`slow-C`). Timed from the first mail the sink accepted
to the N-th; one JSON line is printed, as peers.py does.
"""

import base64
import contextlib
import json
import os
import smtplib
import sys
import threading
import time

state = {"first": None, "count": 0, "total": 0, "reconnects": 0}
counting = threading.Lock()
local = threading.local()
settings = {}
messages = []
TRIES = 3


def tick():
    """Count a sent mail; at the N-th print the rate and leave at once."""
    now = time.perf_counter()
    with counting:
        if state["first"] is None:
            state["first"] = now
        state["count"] += 1
        if state["count"] != state["total"]:
            return
        seconds = now - state["first"]
        rate = (state["total"] - 1) / seconds if seconds > 0 else None
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "rate": rate,
                    "mails": state["total"],
                    "reconnects": state["reconnects"],
                }
            ),
            flush=True,
        )
        os._exit(0)


def connection():
    """This thread's SMTP connection, opened on its first send."""
    if getattr(local, "smtp", None) is None:
        local.smtp = smtplib.SMTP(settings["host"], settings["port"], timeout=10)
    return local.smtp


def drop():
    smtp, local.smtp = getattr(local, "smtp", None), None
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()


def send_mail(index):
    """Send message `index` over this thread's connection; reconnect after an error."""
    sender, recipients, data = messages[index % len(messages)]
    for attempt in range(TRIES):
        try:
            connection().sendmail(sender, recipients, data)
            break
        except (smtplib.SMTPException, OSError):
            drop()
            with counting:
                state["reconnects"] += 1
            if attempt == TRIES - 1:
                raise
    tick()


def queue_name(threads):
    """A queue for each run: what a run leaves (Dramatiq's last unacked messages, requeued
    once the process's heartbeat is stale) is never read by the next run."""
    return f"slow-{threads}"


def celery(url, total, threads):
    from celery import Celery

    app = Celery("slow-bench", broker=url)
    app.conf.update(
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_default_queue=queue_name(threads),
    )

    @app.task(name="send_mail")
    def send(index):
        send_mail(index)

    for index in range(total):
        send.delay(index)
    worker = app.Worker(
        pool="threads",
        concurrency=threads,
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        quiet=True,
    )
    worker.start()


def dramatiq(url, total, threads):
    import dramatiq as dq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url)
    dq.set_broker(broker)

    @dq.actor(queue_name=queue_name(threads))
    def send(index):
        send_mail(index)

    for index in range(total):
        send.send(index)
    worker = dq.Worker(broker, worker_threads=threads)
    worker.start()
    while True:
        time.sleep(1)


def load(path):
    with open(path) as source:
        return [
            (item["from"], item["to"], base64.b64decode(item["data"])) for item in json.load(source)
        ]


if __name__ == "__main__":
    kind, redis_url, host, port, jobs, threads, path = sys.argv[1:8]
    settings.update(host=host, port=int(port))
    messages.extend(load(path))
    state["total"] = int(jobs)
    {"celery": celery, "dramatiq": dramatiq}[kind](redis_url, int(jobs), int(threads))
