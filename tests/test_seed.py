"""`flask seed`: a demo shop made through the services, the same after a second run.

Run on the suite's database (PostgreSQL, or SQLite with `TEST_DATABASE=sqlite`); what is
checked is what a newcomer would see: the printed sign-in list, the sign-in itself, and
the bookings the API shows.
"""

import re
from zoneinfo import ZoneInfo

from sqlalchemy import select

from gobarber.extensions import db
from gobarber.models import Appointment, User
from gobarber.shop_time import now

ROW = re.compile(
    r"^(?P<role>provider|customer)\s+(?P<name>.+?)\s{2,}(?P<email>\S+@\S+)\s+"
    r"(?P<account>created|found)\s+(?P<bookings>\d+)$"
)


def printed_people(output):
    """The sign-in table's rows, as dicts of role, name, e-mail, account and bookings."""
    return [match.groupdict() for line in output.splitlines() if (match := ROW.match(line))]


def printed_password(output):
    [password] = re.findall(r"^password of every account: (\S+)", output, re.MULTILINE)
    return password


def people(app):
    """Every user, as (id, e-mail, provider) sorted by id."""
    with app.app_context():
        rows = db.session.execute(select(User.id, User.email, User.provider).order_by(User.id))
        return [tuple(row) for row in rows]


def bookings(app):
    """Every appointment, as (id, customer id, provider id, start, cancelled at)."""
    with app.app_context():
        query = select(
            Appointment.id,
            Appointment.user_id,
            Appointment.provider_id,
            Appointment.date,
            Appointment.canceled_at,
        ).order_by(Appointment.id)
        return [tuple(row) for row in db.session.execute(query)]


def sign_in(client, email, password):
    signed = client.post("/sessions", json={"email": email, "password": password})
    assert signed.status_code == 200, (email, signed.json)
    return {"Authorization": f"Bearer {signed.json['token']}"}


def test_a_second_run_finds_everything_and_creates_nothing(app, flask_cli):
    first = flask_cli("seed")
    assert first.exit_code == 0, first.output
    made_people, made_bookings = people(app), bookings(app)

    second = flask_cli("seed")

    assert second.exit_code == 0, second.output
    assert people(app) == made_people
    assert bookings(app) == made_bookings
    assert "(7 created, 0 found), 12 upcoming bookings (12 booked, 0 found)" in first.output
    assert "(0 created, 7 found), 12 upcoming bookings (0 booked, 12 found)" in second.output
    listed = [(row["role"], row["email"]) for row in printed_people(second.output)]
    assert listed == [(row["role"], row["email"]) for row in printed_people(first.output)]
    assert {row["account"] for row in printed_people(first.output)} == {"created"}
    assert {row["account"] for row in printed_people(second.output)} == {"found"}


def test_the_printed_sign_in_list_signs_in_through_the_api(app, client, flask_cli):
    output = flask_cli("seed").output

    listed = printed_people(output)
    password = printed_password(output)
    assert sorted(row["email"] for row in listed) == sorted(email for _, email, _ in people(app))
    for row in listed:
        headers = sign_in(client, row["email"], password)
        # The table's role is the account's: a provider sees the day, a customer does not.
        day = client.get("/schedule", query_string={"date": now().isoformat()}, headers=headers)
        assert day.status_code == (200 if row["role"] == "provider" else 401), row
    customer = next(row["email"] for row in listed if row["role"] == "customer")
    assert f'"email": "{customer}", "password": "{password}"' in output  # the curl hint


def test_customers_have_one_upcoming_booking_with_each_provider_on_the_shops_slots(
    app, client, flask_cli
):
    output = flask_cli("seed").output

    zone = ZoneInfo(app.config["SHOP_TIMEZONE"])
    shop_today = now().astimezone(zone).date()
    everyone = people(app)
    providers = {user_id for user_id, _, provider in everyone if provider}
    customers = {user_id for user_id, _, provider in everyone if not provider}
    made = bookings(app)
    assert sorted((customer, provider) for _, customer, provider, _, _ in made) == sorted(
        (customer, provider) for customer in customers for provider in providers
    )
    for _, _, _, start, canceled_at in made:
        local = start.astimezone(zone)
        assert canceled_at is None
        assert (local.hour, local.minute) in app.config["SHOP_SLOTS"]
        assert local.second == local.microsecond == 0
        # From tomorrow, on the next few days: every one can still be cancelled.
        assert 1 <= (local.date() - shop_today).days <= 3
    # Nobody double-booked: not a provider, not a customer.
    assert len({(provider, start) for _, _, provider, start, _ in made}) == len(made)
    assert len({(customer, start) for _, customer, _, start, _ in made}) == len(made)

    # What the customer's client shows: one booking with each provider, the sink's
    # failing and flaky ones among them, all cancelable.
    password = printed_password(output)
    emails = {user_id: email for user_id, email, provider in everyone if provider}
    assert any(email.endswith("@fail.example") for email in emails.values())
    assert any(email.endswith("@flaky.example") for email in emails.values())
    first_customer = next(row for row in printed_people(output) if row["role"] == "customer")
    headers = sign_in(client, first_customer["email"], password)
    shown = client.get("/appointments", headers=headers).json
    assert sorted(emails[item["provider"]["id"]] for item in shown) == sorted(emails.values())
    assert all(item["cancelable"] for item in shown)


def test_a_cancelled_booking_is_booked_again_at_an_hour_the_customer_is_free(
    app, client, flask_cli
):
    output = flask_cli("seed").output
    customer = next(row for row in printed_people(output) if row["role"] == "customer")
    headers = sign_in(client, customer["email"], printed_password(output))
    failing = {user_id for user_id, email, _ in people(app) if email.endswith("@fail.example")}
    [with_failing] = [
        item
        for item in client.get("/appointments", headers=headers).json
        if item["provider"]["id"] in failing
    ]
    assert client.delete(f"/appointments/{with_failing['id']}", headers=headers).status_code == 200
    # The customer takes the freed hour with a provider the seed does not know.
    other = {"name": "Pedro Lima", "email": "pedro.lima@example.com", "password": "secret123"}
    pedro = client.post("/users", json={**other, "provider": True}).json
    taken = client.post(
        "/appointments",
        json={"provider_id": pedro["id"], "date": with_failing["date"]},
        headers=headers,
    )
    assert taken.status_code == 200, taken.json
    before = bookings(app)

    again = flask_cli("seed")

    assert "12 upcoming bookings (1 booked, 11 found)" in again.output
    after = bookings(app)
    assert after[: len(before)] == before  # the cancelled one stays cancelled
    [(_, customer_id, provider_id, start, canceled_at)] = after[len(before) :]
    cancelled = next(row for row in before if row[0] == with_failing["id"])
    assert (customer_id, provider_id, canceled_at) == (cancelled[1], cancelled[2], None)
    assert start > now()
    assert start != cancelled[3]  # that hour is the customer's booking with Pedro now


def test_the_booking_rules_apply_to_the_seed(app, flask_cli):
    app.config["MAX_ACTIVE_BOOKINGS"] = 2

    output = flask_cli("seed").output

    made = bookings(app)
    assert len(made) == 3 * 2  # each of the three customers up to the limit
    assert output.count(": Too many active appointments") == 3 * 2
    assert "6 upcoming bookings (6 booked, 0 found)" in output


def test_production_is_refused_without_force(app, flask_cli):
    app.config["APP_ENV"] = "production"

    refused = flask_cli("seed")

    assert refused.exit_code == 1
    assert "APP_ENV is production" in refused.output and "--force" in refused.output
    assert people(app) == [] and bookings(app) == []

    forced = flask_cli("seed", "--force")

    assert forced.exit_code == 0, forced.output
    assert len(people(app)) == 7 and len(bookings(app)) == 12
