"""What operators see of the schedule, per kind of mail: `flask queue status`, the admin
page's deliveries table and `/metrics`.

The rows are written straight into the outbox, one of each kind in each state, without
their producers: a `scheduled` mail is a `queued` row whose `due_at` is still ahead, and
is counted as scheduled only, never also as queued.
"""

import json
import logging
import re
import socket
import uuid
from datetime import UTC, timedelta

import pytest
from sqlalchemy.engine import make_url

from gobarber import create_app
from gobarber.extensions import db
from gobarber.models import Appointment, MailDelivery, User
from gobarber.models.mail_delivery import DeliveryStatus, MailKind
from gobarber.shop_time import now
from tests.apps import clean_redis, make_config
from tests.forms import admin_sign_in
from tests.scrape import metric_values

STATUSES = ("scheduled", "queued", "sent", "failed", "held", "canceled")


def counts(**figures):
    """Counts of every shown status, zero where not given."""
    return {status: figures.get(status, 0) for status in STATUSES}


def millis(moment):
    return int(moment.timestamp() * 1000)


def shown_utc(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@pytest.fixture
def outbox(app, api, slot):
    """A reminder due in 2 hours and one due in 10 minutes, one whose time has come, a
    failed and a canceled reminder; a sent cancellation (three hours old) and a held one;
    a queued password reset mail."""
    customer, provider = api.person("Cliente Ana"), api.provider("Barbeiro Zé")
    with app.app_context():
        # Not booked through the API: its reminder would be the producer's, not this test's.
        appointment = Appointment(
            date=slot(days=2, hour=10), user_id=customer.id, provider_id=provider.id
        )
        db.session.add(appointment)
        db.session.commit()
        appointment_id = appointment.id
    moment = now()
    soon, later = moment + timedelta(minutes=10), moment + timedelta(hours=2)

    def row(kind, status, **fields):
        fields.setdefault(
            "appointment_id", None if kind == MailKind.PASSWORD_RESET else appointment_id
        )
        return MailDelivery(
            event_id=str(uuid.uuid4()),
            kind=kind,
            priority="high" if kind == MailKind.PASSWORD_RESET else "default",
            recipient=customer.email,
            status=status,
            **fields,
        )

    with app.app_context():
        db.session.add_all(
            [
                row(MailKind.REMINDER, DeliveryStatus.QUEUED, due_at=later),
                row(MailKind.REMINDER, DeliveryStatus.QUEUED, due_at=soon),
                row(MailKind.REMINDER, DeliveryStatus.QUEUED, due_at=moment - timedelta(minutes=1)),
                row(MailKind.REMINDER, DeliveryStatus.FAILED, due_at=moment - timedelta(hours=1)),
                row(
                    MailKind.REMINDER, DeliveryStatus.CANCELED, due_at=moment + timedelta(minutes=5)
                ),
                row(
                    MailKind.CANCELLATION,
                    DeliveryStatus.SENT,
                    created_at=moment - timedelta(hours=3),
                ),
                row(MailKind.CANCELLATION, DeliveryStatus.HELD),
                row(MailKind.PASSWORD_RESET, DeliveryStatus.QUEUED, password_reset_id=None),
            ]
        )
        db.session.commit()
    return {"soon": soon, "later": later}


def test_status_json_counts_each_kind_with_the_next_due_time(flask_cli, outbox):
    deliveries = json.loads(flask_cli("queue", "status", "--json").output)["deliveries"]

    reminder = deliveries["by_kind"]["reminder"]
    assert reminder["total"] == counts(scheduled=2, queued=1, failed=1, canceled=1)
    assert reminder["next_due_ms"] == millis(outbox["soon"])
    cancellation = deliveries["by_kind"]["cancellation"]
    assert cancellation["total"] == counts(sent=1, held=1)
    assert cancellation["last_hour"] == counts(held=1)
    assert cancellation["next_due_ms"] is None
    assert deliveries["by_kind"]["password_reset"]["total"] == counts(queued=1)
    assert deliveries["total"] == counts(
        scheduled=2, queued=2, sent=1, failed=1, held=1, canceled=1
    )
    assert deliveries["last_hour"] == counts(scheduled=2, queued=2, failed=1, held=1, canceled=1)
    assert deliveries["next_due_ms"] == millis(outbox["soon"])


def test_status_table_has_a_row_per_kind(flask_cli, outbox):
    output = flask_cli("queue", "status").output
    rows = {line.split()[0]: line.split()[1:] for line in output.splitlines() if line.strip()}

    header = next(line for line in output.splitlines() if line.startswith("deliveries"))
    assert header.split() == [
        "deliveries",
        "scheduled",
        "next",
        "due",
        "(UTC)",
        "queued",
        "sent",
        "failed",
        "held",
        "canceled",
    ]
    soon = shown_utc(outbox["soon"]).split()
    assert rows["reminder"] == ["2", *soon, "1", "0", "1", "0", "1"]
    assert rows["cancellation"] == ["0", "—", "0", "1", "0", "1", "0"]
    assert rows["password_reset"] == ["0", "—", "1", "0", "0", "0", "0"]
    assert rows["total"] == ["2", *soon, "2", "1", "1", "1", "1"]


def test_the_admin_page_shows_the_same_table(app, api, client, outbox):
    operator = api.person("Operadora")
    with app.app_context():
        db.session.get(User, operator.id).admin = True
        db.session.commit()
    assert admin_sign_in(client, operator.email, operator.password).status_code == 302

    page = client.get("/admin/queue").get_data(as_text=True)

    def cells(kind):
        row = re.search(rf'<tr class="[^"]*" data-kind="{kind}">(.*?)</tr>', page, re.S)
        assert row is not None, page
        return re.findall(r"<td>(.*?)</td>", row.group(1))

    soon = f"{shown_utc(outbox['soon'])} UTC"
    assert cells("reminder") == ["reminder", "2", soon, "1", "0", "1", "0", "1"]
    assert cells("cancellation") == ["cancellation", "0", "—", "0", "1", "0", "1", "0"]
    assert cells("password_reset") == ["password_reset", "0", "—", "1", "0", "0", "0", "0"]
    assert cells("total") == ["total", "2", soon, "2", "1", "1", "1", "1"]


def test_metrics_gauge_the_scheduled_mails_by_kind(client, outbox):
    samples = metric_values(client)

    def of(name, kind):
        return samples.get((name, (("kind", kind),)))

    assert of("gobarber_mail_scheduled", "reminder") == 2
    assert of("gobarber_mail_scheduled", "cancellation") == 0
    assert of("gobarber_mail_scheduled", "password_reset") == 0
    assert of("gobarber_mail_next_due_timestamp_seconds", "reminder") == pytest.approx(
        outbox["soon"].timestamp()
    )
    assert of("gobarber_mail_next_due_timestamp_seconds", "cancellation") is None


def test_metrics_count_every_kind_from_zero(client):
    samples = metric_values(client)

    for state in ("queued", "sent", "failed", "retried", "dead"):
        for kind in MailKind:
            assert samples[(f"gobarber_mail_{state}_total", (("kind", str(kind)),))] == 0


@pytest.fixture
def closed_port():
    """A local port bound by no server: connecting to it is refused at once."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


def test_metrics_answer_without_the_outbox_gauges_when_the_database_fails(
    database_url, tmp_path, closed_port, caplog
):
    unreachable = make_url("postgresql+psycopg://postgres@127.0.0.1/gobarber").set(port=closed_port)
    config = make_config(
        database_url,
        tmp_path,
        SQLALCHEMY_DATABASE_URI=unreachable.render_as_string(hide_password=False),
    )
    app = create_app(config)
    caplog.set_level(logging.WARNING, logger="gobarber.mail.metrics")
    try:
        samples = metric_values(app.test_client())
    finally:
        clean_redis(config["MAIL_STREAM_PREFIX"])

    names = {name for name, _ in samples}
    assert "gobarber_mail_dead_letters" in names
    assert not names & {"gobarber_mail_scheduled", "gobarber_mail_held"}
    skipped = [r.getMessage() for r in caplog.records if r.name == "gobarber.mail.metrics"]
    assert any(line.startswith("gobarber_mail_scheduled skipped") for line in skipped), skipped
