"""`flask` commands for operators: the mail queue and admin users."""

import json
import re
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from gobarber.extensions import db, mail_queue
from gobarber.mail import operations
from gobarber.models import User
from gobarber.seed import seed

queue_cli = AppGroup(
    "queue", help="See the mail queue, its dead letters and held mails; retry and release them."
)
users_cli = AppGroup("users", help="Manage users.")


# What a terminal would act on rather than show: C0, DEL and C1 controls (ESC and CSI
# among them), the Unicode line and paragraph separators, and the bidi overrides.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(text):
    """Show stored text with its control characters escaped (`\\x1b`), never raw."""
    return _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], str(text))


def _json(data):
    # `ensure_ascii` (the default, kept on purpose) escapes every control character too.
    return json.dumps(data, indent=2, ensure_ascii=True)


def _table(headers, rows):
    """Render rows as a plain text table, stored text escaped."""
    cells = [[_visible(h) for h in headers]]
    cells += [["—" if c is None else _visible(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _deliveries_table(counts):
    """Deliveries of each kind by status, then every kind's total and the last hour's."""
    after = ["queued", "sent", "failed", "held", "canceled"]

    def row(label, figures, next_due_ms):
        return [label, figures["scheduled"], _when(next_due_ms), *(figures[s] for s in after)]

    rows = [row(kind, c["total"], c["next_due_ms"]) for kind, c in counts["by_kind"].items()]
    rows.append(row("total", counts["total"], counts["next_due_ms"]))
    rows.append(row("last hour", counts["last_hour"], None))
    return _table(["deliveries", "scheduled", "next due (UTC)", *after], rows)


def _shard_option(command):
    return click.option(
        "--shard", type=int, default=None, help="Only this shard of the streams (0, 1, ...)."
    )(command)


def _queue_of(shard):
    queue = mail_queue.get()
    if shard is not None and shard not in queue.shards:
        raise click.UsageError(
            f"--shard {shard}: with MAIL_STREAM_SHARDS={len(queue.shards)} the shards are "
            f"0-{len(queue.shards) - 1}"
        )
    return queue


@queue_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@_shard_option
def status(as_json, shard):
    """Show streams, consumers, dead letters, held mails and deliveries by kind and status.

    With several shards the streams are summed over them, and a table shows each one's
    backlog; --shard shows one shard's streams and dead letters."""
    state = operations.status(_queue_of(shard), shard=shard)
    if as_json:
        click.echo(_json(state))
        return
    click.echo(
        _table(
            ["stream", "length", "pending", "lag", "oldest pending (s)", "consumers"],
            [
                [
                    s["priority"],
                    s["length"],
                    s["pending"],
                    s["lag"],
                    s["oldest_pending_age_s"],
                    len(s["consumers"]),
                ]
                for s in state["streams"]
            ],
        )
    )
    if state["shards"]:
        click.echo()
        click.echo(
            _table(
                ["shard", "lag", "pending", "waiting"],
                [[x["shard"], x["lag"], x["pending"], x["scheduled"]] for x in state["shards"]],
            )
        )
    consumers = [
        [s["priority"], c["name"], c["pending"], c["idle_s"]]
        for s in state["streams"]
        for c in s["consumers"]
    ]
    if consumers:
        click.echo()
        click.echo(_table(["stream", "consumer", "pending", "idle (s)"], consumers))
    click.echo()
    click.echo(_deliveries_table(state["deliveries"]))
    click.echo(f"\ndead letters: {state['dead_letters']}")
    click.echo(f"held mails: {state['held']}")
    # Redis's count: a scheduled mail waits in the same place as a retry.
    waiting = sum(s["scheduled"] for s in state["streams"])
    click.echo(f"retries and scheduled mails waiting: {waiting}")


def _when(ms):
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@queue_cli.command("dead")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--limit", default=100, show_default=True, help="Newest N dead letters.")
@_shard_option
def dead(as_json, limit, shard):
    """List dead letters: event, kind, recipient, attempts, last error and when."""
    letters = operations.dead_letters(_queue_of(shard), limit=limit, shard=shard)
    if as_json:
        click.echo(_json(letters))
        return
    if not letters:
        click.echo("No dead letters.")
        return
    click.echo(
        _table(
            ["event", "kind", "recipient", "attempts", "last error", "dead since (UTC)"],
            [
                [
                    x["event_id"],
                    x["kind"],
                    x["recipient"],
                    x["attempts"],
                    x["error"],
                    _when(x["dead_at_ms"]),
                ]
                for x in letters
            ],
        )
    )


@queue_cli.command("retry")
@click.argument("event_id", required=False)
@click.option("--all", "every", is_flag=True, help="Retry every dead letter.")
def retry(event_id, every):
    """Put a dead letter (or all) back on its stream with fresh attempts."""
    if bool(event_id) == every:
        raise click.UsageError("give one EVENT_ID or --all")
    retried = operations.retry(mail_queue.get(), event_id=None if every else event_id)
    for event in retried:
        click.echo(f"queued again: {_visible(event)}")
    click.echo(f"{len(retried)} mail(s) put back." if retried else "Nothing to retry.")


@queue_cli.command("held")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--limit", default=100, show_default=True, help="Oldest N held mails.")
def held(as_json, limit):
    """List mails held because their customer cancelled too often: event, recipient, customer."""
    mails = operations.held_mails(limit=limit)
    if as_json:
        click.echo(_json(mails))
        return
    if not mails:
        click.echo("No held mails.")
        return
    click.echo(
        _table(
            ["event", "kind", "recipient", "customer", "appointment", "held since (UTC)"],
            [
                [
                    x["event_id"],
                    x["kind"],
                    x["recipient"],
                    x["customer"],
                    x["appointment_id"],
                    _when(x["held_at_ms"]),
                ]
                for x in mails
            ],
        )
    )


@queue_cli.command("release")
@click.argument("event_id", required=False)
@click.option("--all", "every", is_flag=True, help="Release every held mail.")
def release(event_id, every):
    """Queue a held mail (or all) and put it on its stream, to be sent as usual."""
    if bool(event_id) == every:
        raise click.UsageError("give one EVENT_ID or --all")
    released = operations.release(mail_queue.get(), event_id=None if every else event_id)
    for event in released:
        click.echo(f"released: {_visible(event)}")
    click.echo(f"{len(released)} mail(s) released." if released else "Nothing to release.")


@queue_cli.command("forget-consumer")
@click.argument("name")
def forget_consumer(name):
    """Remove a consumer that is gone, after requeueing what it still held."""
    visibility_ms = current_app.config["MAIL_VISIBILITY_TIMEOUT"] * 1000
    try:
        moved = operations.forget_consumer(mail_queue.get(), name, visibility_ms=visibility_ms)
    except operations.ConsumerActive as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Forgot consumer {name}; requeued {moved} entr{'y' if moved == 1 else 'ies'}.")


@users_cli.command("make-admin")
@click.argument("email")
@click.option("--revoke", is_flag=True, help="Take the admin flag away instead.")
def make_admin(email, revoke):
    """Let a user see the queue page (/admin/queue)."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    user.admin = not revoke
    db.session.commit()
    click.echo(f"{user.email} is {'no longer ' if revoke else ''}an admin.")


def register(app):
    """Register the `flask queue`, `flask users` and `flask seed` commands."""
    app.cli.add_command(queue_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(seed)
