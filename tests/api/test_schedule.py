"""The provider's day, `GET /schedule` and `GET /schedules` (both clients' spellings).

Days are shop-local: an appointment late in the shop's evening is already the next day
in UTC, and still belongs to the shop day the provider sees it in.
"""

from datetime import UTC, datetime, time, timedelta

import pytest

from gobarber.extensions import db
from gobarber.models import Appointment

PATHS = pytest.mark.parametrize("path", ["/schedule", "/schedules"])
KEYS = {
    "id",
    "date",
    "canceled_at",
    "past",
    "cancelable",
    "user_id",
    "provider_id",
    "createdAt",
    "updatedAt",
    "user",
}


def to_iso_string(moment):
    """Spell a moment as the web client's `new Date().toISOString()` does."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_iso(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def insert_appointment(app, *, customer, provider, date):
    """Write a row directly, for shop hours outside the slot list."""
    with app.app_context():
        row = Appointment(user_id=customer.id, provider_id=provider.id, date=date)
        db.session.add(row)
        db.session.commit()
        return row.id


def schedule(client, path, person, date):
    return client.get(path, query_string={"date": date}, headers=person.headers)


@PATHS
@pytest.mark.parametrize("query", [{"date": "2026-11-30T12:00:00.000Z"}, {"date": "abc"}, {}])
def test_customers_are_refused_whatever_the_date(client, api, path, query):
    customer = api.person("Customer")
    response = client.get(path, query_string=query, headers=customer.headers)
    assert response.status_code == 401
    assert response.json == {"error": "User is not a provider"}


@PATHS
@pytest.mark.parametrize(
    "query", ["", "?date=", "?date=abc", "?date=2026-13-45", "?day=2026-11-30"]
)
def test_missing_or_bad_dates(client, api, path, query):
    provider = api.provider("Barber")
    response = client.get(path + query, headers=provider.headers)
    assert response.status_code == 400
    assert response.json["error"] == "Invalid date"


@PATHS
def test_the_days_appointments_in_order_with_their_customer(client, api, slot, path):
    provider, other_provider = api.provider("Barber"), api.provider("Other barber")
    ana, bia = api.person("Ana"), api.person("Bia")
    late = api.book(ana, provider, slot(days=3, hour=15)).json
    early = api.book(bia, provider, slot(days=3, hour=9)).json
    noon = api.book(ana, provider, slot(days=3, hour=12)).json
    canceled = api.book(bia, provider, slot(days=3, hour=10)).json
    assert client.delete(f"/appointments/{canceled['id']}", headers=bia.headers).status_code == 200
    assert api.book(ana, other_provider, slot(days=3, hour=11)).status_code == 200
    assert api.book(ana, provider, slot(days=2, hour=12)).status_code == 200
    assert api.book(ana, provider, slot(days=4, hour=12)).status_code == 200

    response = schedule(client, path, provider, to_iso_string(slot(days=3, hour=10)))

    assert response.status_code == 200
    rows = response.json
    assert [row["id"] for row in rows] == [early["id"], noon["id"], late["id"]]
    assert all(set(row) == KEYS for row in rows)
    assert [row["user"] for row in rows] == [{"name": "Bia"}, {"name": "Ana"}, {"name": "Ana"}]
    first = rows[0]
    assert {key: first[key] for key in KEYS - {"user"}} == early
    assert first["date"] == utc_iso(slot(days=3, hour=9))
    assert (first["canceled_at"], first["past"], first["cancelable"]) == (None, False, True)


@PATHS
def test_an_empty_day(client, api, slot, path):
    provider = api.provider("Barber")
    response = schedule(client, path, provider, to_iso_string(slot(days=3, hour=10)))
    assert (response.status_code, response.json) == (200, [])


def spell(moment, how):
    """The date query as clients may send it: UTC with Z, shop time with offset, a bare day."""
    return {
        "toISOString": to_iso_string,
        "shop offset": lambda local: local.isoformat(),
        "no offset": lambda local: local.replace(tzinfo=None).isoformat(),
    }[how](moment)


@PATHS
@pytest.mark.parametrize("how", ["toISOString", "shop offset", "no offset"])
@pytest.mark.parametrize(
    "day, clock, seen",
    [
        pytest.param(0, time(0, 30), True, id="same day 00:30"),
        pytest.param(0, time(12, 0), True, id="same day 12:00"),
        pytest.param(0, time(23, 30), True, id="same day 23:30"),
        pytest.param(-1, time(23, 30), False, id="day before 23:30"),
        pytest.param(1, time(0, 30), False, id="day after 00:30"),
    ],
)
def test_days_end_at_the_shops_midnight(app, client, api, slot, path, how, day, clock, seen):
    provider, customer = api.provider("Barber"), api.person("Customer")
    evening = api.book(customer, provider, slot(days=3, hour=19)).json["id"]
    # 20:00 and 22:00 in the shop: past the slot list, and the next day in UTC west of it.
    eight = insert_appointment(app, customer=customer, provider=provider, date=slot(3, 20))
    ten = insert_appointment(app, customer=customer, provider=provider, date=slot(3, 22))
    local = datetime.combine(slot(days=3 + day).date(), clock, tzinfo=slot().tzinfo)

    response = schedule(client, path, provider, spell(local, how))

    assert response.status_code == 200
    assert [row["id"] for row in response.json] == ([evening, eight, ten] if seen else [])


@PATHS
def test_a_bare_date_is_the_shops_day(app, client, api, slot, path):
    provider, customer = api.provider("Barber"), api.person("Customer")
    booked = api.book(customer, provider, slot(days=3, hour=8)).json["id"]
    late = insert_appointment(app, customer=customer, provider=provider, date=slot(3, 23))

    response = schedule(client, path, provider, slot(days=3).date().isoformat())

    assert [row["id"] for row in response.json] == [booked, late]


@PATHS
def test_past_appointments_show_as_past(app, client, api, slot, path):
    provider, customer = api.provider("Barber"), api.person("Customer")
    yesterday = slot(days=-1, hour=10)
    insert_appointment(app, customer=customer, provider=provider, date=yesterday)

    rows = schedule(client, path, provider, to_iso_string(yesterday + timedelta(hours=1))).json

    assert [(row["date"], row["past"], row["cancelable"]) for row in rows] == [
        (utc_iso(yesterday), True, False)
    ]
