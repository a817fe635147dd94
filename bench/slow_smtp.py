"""Benchmark 8, slow SMTP: one worker's concurrent SMTP sessions against a server that
takes 100 ms a mail.

The SMTP sink answers each message 100 ms after its data (`smtp_sink.py PORT 0.1`), so C
sessions can carry at most 10 x C mails/s (160 at the default MAIL_CONCURRENCY=16). All in
one run, each against a sink of that delay:
- the sequential loop: a bare Flask-Mail loop over one connection sending the same
  messages (bodies rendered beforehand), as benchmark 3's limit is measured: ~10 mails/s;
- ours: one real `python -m consumers.worker` process with MAIL_CONCURRENCY=C (C = 1, 4,
  16, 64), each C on a System of its own (fresh database, Redis and sink) with N seeded
  cancellations; mails/s from the outbox's sent_at, as benchmark 3 counts;
- Celery (`threads` pool, concurrency C) and Dramatiq (worker_threads=C) on the same
  Redis and sink as the sequential loop (`slow_peers.py`), each task sending one of the
  same messages over its thread's persistent smtplib connection; timed from the first
  mail accepted to the N-th.
- the send layers alone (`send_layers.py`, on the same sink, no queue and no outbox):
  the same N messages, prepared as the worker prepares them (`smtp.Outgoing.of`), sent
  by (a) C threads, one smtplib connection each, from a shared queue (what
  gobarber/mail/senders.py does) and (b) one asyncio loop with C tasks, one aiosmtplib
  connection each, from an asyncio.Queue; each in a fresh interpreter; mails/s = N /
  (last reply - first send started), with the process's CPU time per mail.
The runs alternate by C (ours, Celery, Dramatiq, threads, asyncio at 1, then at 4, ...),
so load from elsewhere on the machine falls on all alike. Also writes
bench/results/slow_smtp.png: mails/s against C for each, the 10 x C limit and the
sequential loop.
"""

import base64
import json
import subprocess
import sys
import time

from flask_mail import Message
from flask_mail import sanitize_address as flask_sanitize_address
from mail_throughput import sent_rate
from queue_overhead import peer
from report import figure, note, ratio, result
from sqlalchemy import select
from system import BENCH, system, wait_until

from gobarber.extensions import db
from gobarber.extensions import mail as flask_mail
from gobarber.mail import smtp
from gobarber.mail.messages import render
from gobarber.models import MailDelivery

DELAY = 0.1  # seconds the sink takes to answer each mail
CONCURRENCIES = (1, 4, 16, 64)
TARGET_C = 16  # the default MAIL_CONCURRENCY; the targets are about it
PEERS = (
    ("celery", "Celery", "threads pool, concurrency {c}, prefetch multiplier 4, acks early"),
    ("dramatiq", "Dramatiq", "RedisBroker, worker_threads={c}, prefetch 2 x {c}, acks after"),
)
LAYERS = (
    ("threads", "threads (smtplib)", "{c} threads, one smtplib.SMTP each, a shared queue"),
    ("asyncio", "asyncio (aiosmtplib)", "1 loop, {c} tasks, one aiosmtplib.SMTP each"),
)
CHART = BENCH / "results" / "slow_smtp.png"


def mails_for(concurrency, full):
    """N for one run at concurrency C: a few seconds at the 10 x C limit, more if slower."""
    return max(120, 50 * concurrency) if full else max(60, 25 * concurrency)


def batch_for(concurrency):
    """MAIL_BATCH_SIZE: the default 50, or C when C is larger (a batch must fill C)."""
    return max(50, concurrency)


def rendered_messages(sys_):
    """Every seeded row's message as the app renders it: (subject, recipients, text body,
    HTML body, event id), in the outbox's order."""
    with sys_.app.app_context():
        rows = db.session.scalars(select(MailDelivery).order_by(MailDelivery.id)).all()
        rendered = []
        for row in rows:
            message = render(row)
            rendered.append(
                (message.subject, message.recipients, message.body, message.html, row.event_id)
            )
        db.session.rollback()
    return rendered


def flask_message(subject, recipients, body, html, event_id):
    """The message the sequential loop sends, built as benchmark 3's bare loop builds it."""
    message = Message(subject=subject, recipients=recipients, body=body, html=html)
    message.msgId = f"<{event_id}@gobarber.com>"
    return message


def sequential_loop(sys_, rendered):
    """Time Flask-Mail sending `rendered` over one connection; return mails/s."""
    with sys_.app.app_context():
        started = time.perf_counter()
        with flask_mail.connect() as connection:
            for fields in rendered:
                connection.send(flask_message(*fields))
        return len(rendered) / (time.perf_counter() - started)


def write_peer_messages(sys_, rendered, path):
    """The same messages for the peers: envelope and bytes as Flask-Mail's send has them."""
    items = []
    with sys_.app.app_context():
        for fields in rendered:
            message = flask_message(*fields)
            message.date = time.time()
            items.append(
                {
                    "from": flask_sanitize_address(message.sender),
                    "to": [flask_sanitize_address(address) for address in message.send_to],
                    "data": base64.b64encode(message.as_bytes()).decode("ascii"),
                }
            )
    path.write_text(json.dumps(items))


def write_outgoing(sys_, rendered, path):
    """The same messages for the send layers, as the worker hands them to its senders:
    `smtp.Outgoing.of` each (envelope and bytes), built once here."""
    items = []
    with sys_.app.app_context():
        for fields in rendered:
            outgoing = smtp.Outgoing.of(flask_message(*fields))
            items.append(
                {
                    "from": outgoing.sender,
                    "to": outgoing.recipients,
                    "data": base64.b64encode(outgoing.data).decode("ascii"),
                }
            )
    path.write_text(json.dumps(items))


def ours(workdir, concurrency, total):
    """N seeded cancellations sent by one worker process with MAIL_CONCURRENCY=C, on a
    System of its own; return mails/s from the outbox's sent_at span."""
    with system(
        workdir / f"slow-ours-{concurrency}",
        smtp_delay=DELAY,
        MAIL_CONCURRENCY=concurrency,
        MAIL_BATCH_SIZE=batch_for(concurrency),
    ) as sys_:
        sys_.cancellations(total)
        sys_.processes.worker("worker-1")

        def all_sent():
            sys_.processes.assert_alive("worker-1")  # a dead worker fails now, with its log
            return sys_.count_sent() >= total

        wait_until(all_sent, timeout=60 + total / 5, what=f"{total} sent")
        return sent_rate(sys_)


def peer_rate(kind, sys_, total, concurrency, messages):
    """Run slow_peers.py for `kind`; return its JSON figures (or the error it printed)."""
    python = str(BENCH / ".venv" / "bin" / "python")
    python = python if (BENCH / ".venv").exists() else sys.executable
    command = [
        python,
        "slow_peers.py",
        kind,
        sys_.redis.url,
        "127.0.0.1",
        str(sys_.smtp.port),
        str(total),
        str(concurrency),
        str(messages),
    ]
    return peer(command, 60 + total / 5)


def bench_python():
    python = BENCH / ".venv" / "bin" / "python"
    return str(python) if python.exists() else sys.executable


def layer_rate(layer, sys_, total, concurrency, messages):
    """Run send_layers.py for `layer` in a fresh interpreter; return its JSON figures (or
    the error it printed). The process is killed on the way out, whatever happens."""
    timeout = 60 + total / 5
    command = [
        bench_python(),
        "send_layers.py",
        layer,
        "127.0.0.1",
        str(sys_.smtp.port),
        str(total),
        str(concurrency),
        str(messages),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=BENCH,
        env={"PATH": "/usr/bin:/bin"},
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": ((err or out).strip().splitlines() or ["no output"])[-1]}


def draw(sequential, curves):
    """bench/results/slow_smtp.png: mails/s against C, a line each, with the limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(8, 5.5))
    xs = list(CONCURRENCIES)
    axis.plot(xs, [c / DELAY for c in xs], "k--", label=f"limit: C sessions / {DELAY:g} s")
    axis.axhline(sequential, color="grey", linestyle=":", label="sequential Flask-Mail loop")
    styles = ("o-", "s-", "^-", "v--", "D--")
    for (label, rates), style in zip(curves.items(), styles, strict=False):
        points = [(c, rates[c]) for c in xs if rates.get(c)]
        if points:
            axis.plot(*zip(*points, strict=True), style, label=label)
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    shown = [sequential] + [rate for rates in curves.values() for rate in rates.values() if rate]
    ticks = [5 * 2**power for power in range(10)]
    ticks = [tick for tick in ticks if min(shown) / 2 <= tick <= 2 * xs[-1] / DELAY]
    axis.set_yticks(ticks, [str(tick) for tick in ticks])
    axis.set_ylim(min(shown) * 0.7, xs[-1] / DELAY * 1.3)
    axis.set_xticks(xs, [str(c) for c in xs])
    axis.set_xlabel("concurrency C (SMTP sessions / threads)")
    axis.set_ylabel("mails/s (log)")
    axis.set_title(f"8. Slow SMTP: the sink answers each mail after {DELAY * 1000:.0f} ms")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    CHART.parent.mkdir(exist_ok=True)
    fig.savefig(CHART, dpi=90)
    plt.close(fig)


def run(*, full, workdir):
    sequential_total = 100 if full else 50
    totals = {c: mails_for(c, full) for c in CONCURRENCIES}
    res = result(
        "slow",
        "8. Slow SMTP (the sink answers each mail after 100 ms)",
        f"SMTP sink taking {DELAY * 1000:.0f} ms a mail: C sessions carry at most 10 x C "
        f"mails/s. Sequential loop: {sequential_total} messages, bare Flask-Mail over one "
        "connection, bodies rendered beforehand. Ours: one python -m consumers.worker with "
        "MAIL_CONCURRENCY=C, N cancellations on a fresh System each C "
        f"(N = {', '.join(f'{totals[c]:,}' for c in CONCURRENCIES)} for C = "
        f"{', '.join(map(str, CONCURRENCIES))}), mails/s from the outbox's sent_at span. "
        "Celery and Dramatiq: C threads, the same N, same messages, one persistent smtplib "
        "connection per thread, timed from the first mail accepted to the N-th. Send "
        "layers: the same N messages as smtp.Outgoing.of builds them, C threads with one "
        "smtplib session each vs one asyncio loop with C tasks with one aiosmtplib session "
        "each, both pulling from a queue, each in a fresh interpreter; N / (last reply - "
        "first send), CPU = the process's time.process_time() over the sends. Runs "
        "alternate by C.",
    )
    rates = {"ours": {}, "celery": {}, "dramatiq": {}, "threads": {}, "asyncio": {}}
    hows = {}
    cpu = {}
    with system(workdir / "slow-peers", smtp_delay=DELAY) as base:
        base.cancellations(max(max(totals.values()), sequential_total))
        rendered = rendered_messages(base)
        messages = workdir / "slow-messages.json"
        write_peer_messages(base, rendered, messages)
        outgoing = workdir / "slow-outgoing.json"
        write_outgoing(base, rendered, outgoing)
        sequential = sequential_loop(base, rendered[:sequential_total])
        for c in CONCURRENCIES:
            rates["ours"][c] = ours(workdir, c, totals[c])
            for kind, _, how in PEERS:
                got = peer_rate(kind, base, totals[c], c, messages)
                rates[kind][c] = got.get("rate")
                extra = f"; {got['reconnects']} reconnects" if got.get("reconnects") else ""
                error = got.get("error")
                hows[kind, c] = f"FAILED: {error}" if error else how.format(c=c) + extra
            for layer, _, how in LAYERS:
                got = layer_rate(layer, base, totals[c], c, outgoing)
                rates[layer][c] = got.get("rate")
                cpu[layer, c] = got.get("cpu_per_mail")
                error = got.get("error")
                hows[layer, c] = (
                    f"FAILED: {error}"
                    if error
                    else f"{how.format(c=c)}; {got['cpu_per_mail'] * 1000:.2f} ms CPU/mail"
                )
    figure(
        res,
        "sequential Flask-Mail loop, one connection",
        sequential,
        "mails/s",
        f"{sequential_total} mails; Message built and sent per mail, bodies rendered beforehand",
    )
    for c in CONCURRENCIES:
        limit = c / DELAY
        figure(
            res,
            f"ours: 1 worker, MAIL_CONCURRENCY={c}",
            rates["ours"][c],
            "mails/s",
            f"{totals[c]:,} mails, batch {batch_for(c)}; "
            f"{rates['ours'][c] / limit:.0%} of the {limit:,.0f} mails/s limit",
        )
    for kind, label, _ in PEERS:
        for c in CONCURRENCIES:
            figure(
                res,
                f"{label}: {c} thread(s)",
                rates[kind][c],
                "mails/s",
                f"{totals[c]:,} mails; {hows[kind, c]}",
            )
    for layer, label, _ in LAYERS:
        for c in CONCURRENCIES:
            rate = rates[layer][c]
            share = f"; {rate / (c / DELAY):.0%} of the limit" if rate else ""
            figure(
                res,
                f"send layer: {label}, {c} sessions",
                rate,
                "mails/s",
                f"{totals[c]:,} mails; {hows[layer, c]}{share}",
            )
    ours16, limit16 = rates["ours"][TARGET_C], TARGET_C / DELAY
    ratio(res, "slow SMTP: 1 worker / sequential loop", ours16 / sequential, 14)
    ratio(res, f"slow SMTP: 1 worker / limit ({limit16:.0f} mails/s)", ours16 / limit16, 0.9)
    for kind, label, _ in PEERS:
        theirs = rates[kind][TARGET_C]
        if theirs:
            ratio(res, f"slow SMTP: 1 worker / {label} (threads, {TARGET_C})", ours16 / theirs, 1.0)
        else:
            note(res, f"{label} at {TARGET_C} threads did not finish: {hows[kind, TARGET_C]}")
    threads16, asyncio16 = rates["threads"][TARGET_C], rates["asyncio"][TARGET_C]
    ratio(
        res,
        f"send layer at {TARGET_C}: asyncio / threads",
        asyncio16 / threads16 if threads16 and asyncio16 else None,
    )
    note(res, layers_note(rates, cpu))
    notes(res)
    res["curves"] = {
        name: {str(c): rate for c, rate in by_c.items()} for name, by_c in rates.items()
    }
    res["curves"]["sequential"] = sequential
    draw(
        sequential,
        {
            "ours (1 worker)": rates["ours"],
            "Celery": rates["celery"],
            "Dramatiq": rates["dramatiq"],
            "send layer: threads (smtplib)": rates["threads"],
            "send layer: asyncio (aiosmtplib)": rates["asyncio"],
        },
    )
    note(res, f"chart: {CHART.relative_to(BENCH.parent)}")
    return res


def layers_note(rates, cpu):
    """What the send-layer comparison decides, worded from this run's numbers only."""
    measured = [c for c in CONCURRENCIES if rates["threads"].get(c) and rates["asyncio"].get(c)]
    if TARGET_C not in measured:
        return f"send layers: no comparison at C = {TARGET_C} (a run failed; see its figure)."

    def share(layer, c):
        return rates[layer][c] / (c / DELAY)

    def shares(layer):
        return ", ".join(f"{share(layer, c):.0%}" for c in measured)

    cs = ", ".join(map(str, measured))
    threads_cpu = cpu["threads", TARGET_C] * 1000
    asyncio_cpu = cpu["asyncio", TARGET_C] * 1000
    text = (
        f"send layers (the bare send, no queue, outbox or rendering): of the 10 x C limit "
        f"at C = {cs}, threads reach {shares('threads')}, asyncio {shares('asyncio')}; "
        f"CPU per mail at {TARGET_C}: threads {threads_cpu:.2f} ms, asyncio "
        f"{asyncio_cpu:.2f} ms. "
    )
    ahead = [c for c in measured if rates["asyncio"][c] > rates["threads"][c]]
    leaner = [c for c in measured if cpu["asyncio", c] < cpu["threads", c]]

    def at(values):
        return f"at C = {', '.join(map(str, values))}" if values else "at no C"

    text += f"asyncio is faster than threads {at(ahead)} and uses less CPU per mail {at(leaner)}. "
    threads_meet = share("threads", TARGET_C) >= 0.9
    asyncio_meet = share("asyncio", TARGET_C) >= 0.9
    if threads_meet and asyncio_meet:
        faster = rates["asyncio"][TARGET_C] / rates["threads"][TARGET_C]
        text += (
            f"At {TARGET_C} both carry >= 90% of the limit (asyncio / threads = "
            f"{faster:.2f}), so the send layer does not decide the 0.9 x limit target "
            "there; of two that meet it the issue keeps the simpler, the threads "
            "(gobarber/mail/senders.py, smtplib through Flask-Mail's connection)."
        )
    elif threads_meet:
        text += (
            f"At {TARGET_C} only the threads carry >= 90% of the limit: the threads "
            "(gobarber/mail/senders.py) are the layer that meets the target."
        )
    elif asyncio_meet:
        text += (
            f"At {TARGET_C} only asyncio carries >= 90% of the limit: in this run the "
            "threads' send layer is below the target on its own."
        )
    else:
        text += f"At {TARGET_C} neither carries >= 90% of the limit in this run."
    ours = rates["ours"].get(TARGET_C)
    if ours:
        text += (
            f" The whole worker (ours, the same threads) reaches {share('ours', TARGET_C):.1%}"
            f" at {TARGET_C} in this run"
        )
        if share("ours", TARGET_C) < share("threads", TARGET_C) - 0.05:
            text += (
                f", the bare threads {share('threads', TARGET_C):.0%}: the send layer alone "
                "does not account for the gap."
            )
        else:
            text += "."
    return text


def notes(res):
    note(
        res,
        "the peers as configured here: Celery 5 with task_acks_late at its default (False): "
        "a message is acknowledged when a pool thread accepts the task, before the mail is "
        "sent, so a worker that dies mid-send loses it; up to 4 x C messages are prefetched "
        "(worker_prefetch_multiplier 4), and with the Redis transport those unacknowledged "
        "come back only after visibility_timeout (3,600 s by default). Results ignored.",
    )
    note(
        res,
        "Dramatiq 2 acknowledges after the actor returns (a failed one is nacked to the dead "
        "letters; default retries, 20), so a worker that dies between the server's reply "
        "and the ack sends the mail again once its messages are requeued (heartbeat timeout "
        "60 s by default). Neither peer records a sent mark anywhere or holds a per-mail "
        "send lock: a redelivered task sends again. Ours marks each mail sent in PostgreSQL "
        "(sent_at) before it XACKs the entry, under a per-event send lock, and reads the "
        "outbox rows and renders each mail, which the peers do not (their messages are "
        "prebuilt).",
    )
