"""Two send layers sending the same prepared mails to the slow SMTP sink:
`send_layers.py LAYER SMTP_HOST SMTP_PORT N C MESSAGES`.

LAYER is `threads` or `asyncio`:
- threads: C threads, each with its own `smtplib.SMTP` connection kept from mail to mail,
  pulling from one shared queue (what gobarber/mail/senders.py does);
- asyncio: one event loop, C tasks, each with its own `aiosmtplib.SMTP` connection kept
  from mail to mail, pulling from one asyncio.Queue.

MESSAGES is a JSON file the benchmark wrote: a list of {"from", "to", "data"} (the
envelope and the message's bytes, base64), from `gobarber.mail.smtp.Outgoing.of` on the
messages the app rendered. The N mails (message i for mail i, cycling) are queued before
the clock starts. Each session opens its connection on its first send, as a sender
does. Timed from the first send's start to the last reply; CPU is this process's
(`time.process_time()`, every thread) from just before the sessions start to the last
reply, connections opened included, closing them not. Runs in a fresh interpreter of its
own; prints one JSON line, as slow_peers.py does.
"""

import asyncio
import base64
import json
import queue
import smtplib
import sys
import threading
import time

TIMEOUT = 10  # seconds, each connection's


def load(path):
    with open(path) as source:
        return [
            (item["from"], item["to"], base64.b64decode(item["data"])) for item in json.load(source)
        ]


def threads(host, port, mails, concurrency):
    """C threads, one smtplib session each, sharing a queue; return (first start, last
    reply, CPU seconds)."""
    work = queue.SimpleQueue()
    for mail in mails:
        work.put(mail)
    spans = []  # (first send started, last reply) of each thread
    sessions = []
    errors = []

    def sender():
        smtp, first, last = None, None, None
        try:
            while True:
                try:
                    sender_, recipients, data = work.get_nowait()
                except queue.Empty:
                    break
                started = time.perf_counter()
                first = started if first is None else first
                if smtp is None:
                    smtp = smtplib.SMTP(host, port, timeout=TIMEOUT)
                    sessions.append(smtp)
                smtp.sendmail(sender_, recipients, data)
                last = time.perf_counter()
        except Exception as error:  # noqa: BLE001 - reported, and the run fails
            errors.append(error)
        if first is not None:
            spans.append((first, last))

    cpu = time.process_time()
    pool = [threading.Thread(target=sender, daemon=True) for _ in range(concurrency)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    cpu = time.process_time() - cpu
    for smtp in sessions:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    if errors:
        raise errors[0]
    return min(start for start, _ in spans), max(end for _, end in spans), cpu


async def _asyncio(host, port, mails, concurrency):
    import aiosmtplib

    work = asyncio.Queue()
    for mail in mails:
        work.put_nowait(mail)
    spans = []
    sessions = []

    async def sender():
        smtp, first, last = None, None, None
        while True:
            try:
                sender_, recipients, data = work.get_nowait()
            except asyncio.QueueEmpty:
                break
            started = time.perf_counter()
            first = started if first is None else first
            if smtp is None:
                smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=TIMEOUT, start_tls=False)
                sessions.append(smtp)
                await smtp.connect()
            await smtp.sendmail(sender_, recipients, data)
            last = time.perf_counter()
        if first is not None:
            spans.append((first, last))

    cpu = time.process_time()
    try:
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        cpu = time.process_time() - cpu
    finally:
        for smtp in sessions:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()
    return min(start for start, _ in spans), max(end for _, end in spans), cpu


def asyncio_layer(host, port, mails, concurrency):
    """One loop, C tasks, one aiosmtplib session each; return (first start, last reply,
    CPU seconds)."""
    return asyncio.run(_asyncio(host, port, mails, concurrency))


def main():
    layer, host, port, total, concurrency, path = sys.argv[1:7]
    total, concurrency = int(total), int(concurrency)
    messages = load(path)
    mails = [messages[index % len(messages)] for index in range(total)]
    run = {"threads": threads, "asyncio": asyncio_layer}[layer]
    first, last, cpu = run(host, int(port), mails, concurrency)
    seconds = last - first
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rate": total / seconds if seconds > 0 else None,
                "mails": total,
                "cpu_per_mail": cpu / total,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
