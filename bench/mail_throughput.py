"""Benchmark 3, mail throughput end to end: cancellations' events to an SMTP server.

N cancellations are seeded exactly as `DELETE /appointments/:id` leaves them (canceled
appointment, queued outbox row, stream entry); then 1 (and, on fresh data, 2) real
`python -m consumers.worker` processes send them to the SMTP sink (aiosmtpd in its own
process). Mails per second come from the outbox itself: the mails marked sent after
the first mark over the time from the first mark to the last (`sent_rate`), so process
start-up is not counted. The limit: a bare Flask-Mail loop in the
benchmark process sending the same N messages (same subject, recipient, text and HTML
bodies, rendered beforehand) over one connection to the same sink.
"""

import time

from flask_mail import Message
from report import figure, ratio, result
from sqlalchemy import func, select
from system import system

from gobarber.extensions import db
from gobarber.extensions import mail as flask_mail
from gobarber.mail.messages import render
from gobarber.models import MailDelivery


def sent_rate(sys_):
    """Mails a second from the outbox's `sent_at`: the mails marked after the first mark,
    over the time from the first mark to the last. A worker marks the mails that came back
    together with one timestamp, so the first mark's whole group is left out, not one."""
    with sys_.app.app_context():
        first, last = db.session.execute(
            select(func.min(MailDelivery.sent_at), func.max(MailDelivery.sent_at))
        ).one()
        after_first = db.session.scalar(
            select(func.count()).select_from(MailDelivery).where(MailDelivery.sent_at > first)
        )
        db.session.rollback()
    return after_first / (last - first).total_seconds()


def through_workers(workdir, total, workers):
    """Seed `total` cancellations, start `workers` worker processes; return mails/s."""
    with system(workdir, MAIL_BATCH_SIZE=50) as sys_:
        sys_.cancellations(total)
        for number in range(workers):
            sys_.processes.worker(f"worker-{number + 1}")
        sys_.wait_sent(total, timeout=600)
        return sent_rate(sys_)


def bare_flask_mail(workdir, total):
    """Render the same messages, then time Flask-Mail sending them over one connection."""
    with system(workdir) as sys_:
        sys_.cancellations(total)
        app = sys_.app
        with app.app_context():
            rows = db.session.scalars(select(MailDelivery).order_by(MailDelivery.id)).all()
            rendered = []
            for row in rows:
                message = render(row)
                rendered.append(
                    (message.subject, message.recipients, message.body, message.html, row)
                )
            ids = [row.event_id for row in rows]
            started = time.perf_counter()
            with flask_mail.connect() as connection:
                for (subject, recipients, body, html, _), event_id in zip(
                    rendered, ids, strict=True
                ):
                    message = Message(subject=subject, recipients=recipients, body=body, html=html)
                    message.msgId = f"<{event_id}@gobarber.com>"
                    connection.send(message)
            return total / (time.perf_counter() - started)


def run(*, full, workdir):
    total = 10_000 if full else 1_000
    res = result(
        "mail",
        "3. Mail throughput end to end",
        f"{total:,} seeded cancellations' events sent by real worker processes to an aiosmtpd "
        "sink in its own process; mails/s = mails marked after the first mark / (last "
        "sent_at - first sent_at), read from the outbox. Limit: a bare Flask-Mail loop over "
        "one connection to the same sink.",
    )
    bare = figure(
        res,
        "bare Flask-Mail loop, one connection",
        bare_flask_mail(workdir / "mail-bare", total),
        "mails/s",
        "Message built and sent per mail; bodies rendered beforehand, not timed",
    )
    one = figure(
        res,
        "pipeline, 1 worker",
        through_workers(workdir / "mail-1", total, 1),
        "mails/s",
        "python -m consumers.worker, batch 50, MAIL_CONCURRENCY 16 (the default): rows read "
        "a batch at a time, sends over 16 sessions, sent marks and XACKs a group at a time",
    )
    two = figure(
        res,
        "pipeline, 2 workers",
        through_workers(workdir / "mail-2", total, 2),
        "mails/s",
        "two worker processes in the group (2 cores shared with PostgreSQL, Redis, sink)",
    )
    ratio(res, "1 worker / bare Flask-Mail loop", one / bare, 0.7)
    ratio(res, "2 workers / bare Flask-Mail loop", two / bare, 1.2)
    return res
