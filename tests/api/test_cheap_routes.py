"""The two busiest routes, the cancel and a provider's free slots, check the bearer token in
the statements that do their work; these tests hold what that must not change, and how
little SQL each runs.

The contract's order stands: a token its user no longer honours is refused before the
request's own refusals, and a token that expires is refused even though it read well
before.
"""

import time
from contextlib import contextmanager
from types import SimpleNamespace

import jwt
import pytest
from sqlalchemy import event, select

from gobarber.extensions import db
from gobarber.models import Appointment, MailDelivery

INVALID = {"error": "Token invalid"}


def millis(moment):
    return str(int(moment.timestamp() * 1000))


def revoke(client, person):
    """Change the person's password, which refuses every token issued to them so far."""
    new = "brandnew9"
    body = {"oldPassword": person.password, "password": new, "confirmPassword": new}
    changed = client.put("/users", json=body, headers=person.headers)
    assert changed.status_code == 200, changed.json


@pytest.fixture
def people(api):
    """A provider and a customer, the usual pair of a booking."""
    return api.provider("Barber"), api.person("Customer")


# Requests that are refused for what they ask, before the token's check: each must answer
# `Token invalid` once the token is revoked.
REFUSED_FOR_THEIR_INPUT = {
    "no date": lambda ids: ("GET", f"/providers/{ids['provider']}/available"),
    "bad date": lambda ids: ("GET", f"/providers/{ids['provider']}/available?date=tomorrow"),
    "date past year 9999": lambda ids: (
        "GET",
        f"/providers/{ids['provider']}/available?date={'9' * 16}",
    ),
    "unknown provider": lambda ids: ("GET", "/providers/999999/available?date=1563879600000"),
    "a customer as provider": lambda ids: (
        "GET",
        f"/providers/{ids['customer']}/available?date=1563879600000",
    ),
    "unknown appointment": lambda ids: ("DELETE", "/appointments/999999"),
    "someone else's appointment": lambda ids: ("DELETE", f"/appointments/{ids['other']}"),
}


@pytest.mark.parametrize(
    "request_of", REFUSED_FOR_THEIR_INPUT.values(), ids=list(REFUSED_FOR_THEIR_INPUT)
)
def test_a_revoked_token_is_refused_before_the_request(client, api, people, slot, request_of):
    provider, customer = people
    stranger = api.person("Stranger")
    other = api.book(stranger, provider, slot(days=2, hour=11)).json["id"]
    method, path = request_of({"provider": provider.id, "customer": customer.id, "other": other})
    refused_for_input = client.open(path, method=method, headers=customer.headers)
    assert refused_for_input.status_code in (400, 401, 404)
    assert refused_for_input.json != INVALID

    revoke(client, customer)

    answer = client.open(path, method=method, headers=customer.headers)
    assert (answer.status_code, answer.json) == (401, INVALID)


def test_a_revoked_token_reads_no_slots(client, people, slot):
    provider, customer = people
    url = f"/providers/{provider.id}/available?date={millis(slot(days=1))}"
    assert client.get(url, headers=customer.headers).status_code == 200

    revoke(client, customer)

    answer = client.get(url, headers=customer.headers)
    assert (answer.status_code, answer.json) == (401, INVALID)


def test_a_revoked_token_cancels_nothing(app, client, api, people, slot):
    provider, customer = people
    booked = api.book(customer, provider, slot(days=2, hour=10)).json

    revoke(client, customer)

    answer = client.delete(f"/appointments/{booked['id']}", headers=customer.headers)
    assert (answer.status_code, answer.json) == (401, INVALID)
    with app.app_context():
        row = db.session.get(Appointment, booked["id"])
        mails = db.session.scalars(
            select(MailDelivery.kind).where(MailDelivery.appointment_id == booked["id"])
        ).all()
    assert row.canceled_at is None
    assert "cancellation" not in mails


def test_a_token_is_refused_once_it_expires_though_it_read_well_before(app, client, people, slot):
    provider, customer = people
    expires = int(time.time()) + 2
    short = jwt.encode(
        {"id": customer.id, "ver": 0, "iat": int(time.time()), "exp": expires},
        app.config["SECRET_KEY"],
        algorithm="HS256",
    )
    url = f"/providers/{provider.id}/available?date={millis(slot(days=1))}"
    headers = {"Authorization": f"Bearer {short}"}
    assert client.get(url, headers=headers).status_code == 200

    deadline = time.monotonic() + 10
    while time.time() < expires:
        assert time.monotonic() < deadline, "the clock did not pass the token's expiry"
        time.sleep(0.05)

    for method, path in (("GET", url), ("DELETE", "/appointments/1")):
        answer = client.open(path, method=method, headers=headers)
        assert (answer.status_code, answer.json) == (401, INVALID), path


@pytest.fixture
def sql_seen(app):
    """Watch what the app sends to the database in a `with sql_seen() as seen:` block:
    each statement's first word (`seen.statements`) and the commits (`seen.commits`)."""
    with app.app_context():
        engine = db.engine

    @contextmanager
    def watching():
        seen = SimpleNamespace(statements=[], commits=0)

        def statement(conn, cursor, text, *args):
            seen.statements.append(text.split()[0])

        def commit(conn):
            seen.commits += 1

        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine, "commit", commit)
        try:
            yield seen
        finally:
            event.remove(engine, "before_cursor_execute", statement)
            event.remove(engine, "commit", commit)

    return watching


def test_free_slots_are_one_statement(client, people, slot, sql_seen):
    provider, customer = people
    url = f"/providers/{provider.id}/available?date={millis(slot(days=1))}"
    client.get(url, headers=customer.headers)

    with sql_seen() as seen:
        answer = client.get(url, headers=customer.headers)

    assert answer.status_code == 200
    assert (seen.statements, seen.commits) == (["SELECT"], 0)


@pytest.mark.parametrize("config_overrides", [{"MAIL_REMINDER_BEFORE": 0}])
def test_a_cancel_is_one_commit_of_three_statements_then_the_publication(
    client, api, people, slot, sql_seen
):
    provider, customer = people
    booked = api.book(customer, provider, slot(days=2, hour=10)).json

    with sql_seen() as seen:
        answer = client.delete(f"/appointments/{booked['id']}", headers=customer.headers)

    assert answer.status_code == 200, answer.json
    assert answer.json["cancellation_mail"]["status"] == "queued"
    # The token checked and the customer locked; the cancel; the outbox row; committed
    # once. Then, after the XADD, where the event went.
    assert seen.statements == ["SELECT", "UPDATE", "INSERT", "UPDATE"]
    assert seen.commits == 1


def test_a_cancel_with_a_reminder_cancels_it_in_the_same_commit(
    client, api, people, slot, sql_seen
):
    provider, customer = people
    booked = api.book(customer, provider, slot(days=3, hour=10)).json

    with sql_seen() as seen:
        answer = client.delete(f"/appointments/{booked['id']}", headers=customer.headers)

    assert answer.status_code == 200, answer.json
    assert answer.json["reminder_mail"]["status"] == "canceled"
    assert seen.statements == ["SELECT", "UPDATE", "UPDATE", "INSERT", "UPDATE"]
    assert seen.commits == 1
