"""Forgotten passwords through real processes: gunicorn and a mail worker.

The whole flow over HTTP, and a reset mail overtaking thousands of cancellation mails on
a slow SMTP server: it is on the high stream, and the worker looks there every half
second even in the middle of a default batch.
"""

import re
import time

import pytest
from sqlalchemy import select

from gobarber.extensions import db
from gobarber.mail import outbox
from gobarber.models import MailDelivery
from gobarber.testing import wait_until
from tests.mobile_client import Client
from tests.streams import insert_deliveries

pytestmark = pytest.mark.postgres_only

WEB_URL = "https://app.gobarber.example"
LINK = re.compile(re.escape(WEB_URL) + r"/reset-password\?token=([A-Za-z0-9_-]+)")
RESET_SUBJECT = "[GoBarber] Recuperação de senha"
BACKLOG = 2_500
SMTP_DELAY_S = 0.03
# Within this of the request the reset mail must be in the mailbox: half a second until
# the worker looks at the high stream, a send in hand, its own send.
OVERTAKE_WITHIN_S = 3.0


@pytest.fixture
def pipeline_env(pipeline_env):
    # The worker's own batch size (50), as in production; a send lock outlasting a batch
    # of slow sends.
    return {
        **pipeline_env,
        "APP_WEB_URL": WEB_URL,
        "MAIL_BATCH_SIZE": 50,
        "MAIL_VISIBILITY_TIMEOUT": 20,
    }


def reset_mails(smtp_server):
    return [m for m in smtp_server.messages if m["Subject"] == RESET_SUBJECT]


def token_in(message):
    [token] = set(LINK.findall(message.get_body(("plain",)).get_content()))
    return token


@pytest.mark.timeout(120)
def test_forgot_mail_reset_over_http(processes, smtp_server):
    url = processes.web(workers=1)
    processes.worker("worker-1")
    client = Client(url)
    _, old_jwt = client.person("Joana Souza", "joana@barber.example.com")

    asked = client.call("POST", "/password/forgot", json={"email": "joana@barber.example.com"})
    unknown = client.call("POST", "/password/forgot", json={"email": "nobody@barber.example.com"})

    assert (asked.status_code, asked.content) == (204, b"")
    assert (unknown.status_code, unknown.content) == (204, b"")
    [mail] = wait_until(lambda: reset_mails(smtp_server), timeout=30, what="the reset mail")
    assert mail["To"] == "Joana Souza <joana@barber.example.com>"
    token = token_in(mail)
    body = {"token": token, "password": "brandnew9", "password_confirmation": "brandnew9"}
    first = client.call("POST", "/password/reset", json=body)
    second = client.call("POST", "/password/reset", json=body)
    assert (first.status_code, first.content) == (204, b"")
    assert (second.status_code, second.json()) == (400, {"error": "Invalid token"})
    refused = client.call("GET", "/notifications", old_jwt)
    assert (refused.status_code, refused.json()) == (401, {"error": "Token invalid"})
    signed = client.call(
        "POST", "/sessions", json={"email": "joana@barber.example.com", "password": "brandnew9"}
    )
    assert signed.status_code == 200
    assert len(reset_mails(smtp_server)) == 1  # nothing for the unknown address


def pile_up_cancellation_mails(app, appointment_id, recipient, count, queue):
    """Queue `count` more mails of one cancelled appointment, as rows and default entries."""
    rows = insert_deliveries(
        app, count, kind="cancellation", appointment_id=appointment_id, recipient=recipient
    )
    with app.app_context():
        pipe = queue.redis.pipeline(transaction=False)
        for row in rows:
            pipe.xadd(queue.stream_key("default"), outbox.entry_fields(MailDelivery(**row)))
        entry_ids = pipe.execute()
        outbox.record_entry_ids(
            [(row["event_id"], entry) for row, entry in zip(rows, entry_ids, strict=True)]
        )
        db.session.commit()


def unsent(app):
    with app.app_context():
        query = select(MailDelivery.id).where(
            MailDelivery.kind == "cancellation", MailDelivery.status == "queued"
        )
        return len(db.session.scalars(query).all())


@pytest.mark.timeout(120)
def test_a_reset_mail_overtakes_thousands_of_cancellation_mails(
    app, client, api, slot, queue, processes, smtp_server
):
    provider = api.provider("Barbeiro Zé")
    customer = api.person("Cliente Ana")
    booked = api.book(customer, provider, slot(days=2, hour=10))
    assert (
        client.delete(f"/appointments/{booked.json['id']}", headers=customer.headers).json[
            "cancellation_mail"
        ]["status"]
        == "queued"
    )
    pile_up_cancellation_mails(app, booked.json["id"], provider.email, BACKLOG - 1, queue)
    assert queue.redis.xlen(queue.stream_key("default")) == BACKLOG
    url = processes.web(workers=1)
    smtp_server.mailbox.delay = SMTP_DELAY_S
    processes.worker("worker-1")
    wait_until(
        lambda: len(smtp_server.messages) >= 75, timeout=30, what="the worker into the backlog"
    )

    asked_at = time.monotonic()
    asked = Client(url).call("POST", "/password/forgot", json={"email": customer.email})
    [mail] = wait_until(lambda: reset_mails(smtp_server), timeout=30, what="the reset mail")
    waited = time.monotonic() - asked_at
    left = unsent(app)

    print(
        f"\ne2e: reset mail received {waited:.2f}s after the request, behind a backlog of "
        f"{BACKLOG} cancellation mails at {SMTP_DELAY_S * 1000:.0f} ms each; "
        f"{left} of them still unsent"
    )
    assert asked.status_code == 204
    assert mail["To"] == f"Cliente Ana <{customer.email}>"
    assert waited < OVERTAKE_WITHIN_S
    assert left > BACKLOG * 0.9
