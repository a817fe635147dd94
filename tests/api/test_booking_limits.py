"""How far ahead and how much one customer may book, and `cancelable` once canceled.

`BOOKING_HORIZON_DAYS` bounds how far ahead a slot may start; `MAX_ACTIVE_BOOKINGS`
bounds a customer's future, non-canceled appointments, also against their own
concurrent bookings on PostgreSQL.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from gobarber.extensions import db
from gobarber.models import Appointment, Notification

TOO_FAR = {"error": "Appointment date is too far ahead"}
TOO_MANY = {"error": "Too many active appointments"}
HORIZON_DAYS = 30
MAX_ACTIVE = 3
EVERY_HOUR = tuple((hour, 0) for hour in range(24))


@pytest.fixture
def config_overrides():
    return {"BOOKING_HORIZON_DAYS": HORIZON_DAYS, "MAX_ACTIVE_BOOKINGS": MAX_ACTIVE}


@pytest.fixture
def people(api):
    return api.provider("Barber"), api.person("Customer")


def count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def insert_past_appointment(app, *, customer, provider, days_ago):
    with app.app_context():
        date = datetime.now(ZoneInfo(app.config["SHOP_TIMEZONE"])) - timedelta(days=days_ago)
        db.session.add(Appointment(user_id=customer.id, provider_id=provider.id, date=date))
        db.session.commit()


def cancel(client, customer, appointment_id):
    return client.delete(f"/appointments/{appointment_id}", headers=customer.headers)


# ---- the horizon ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "config_overrides", [{"BOOKING_HORIZON_DAYS": HORIZON_DAYS, "SHOP_SLOTS": EVERY_HOUR}]
)
def test_the_hour_holding_now_plus_the_horizon_is_the_last_one_bookable(app, api, people):
    # Every hour is a slot, so the hours on either side of the horizon are both slots.
    provider, customer = people
    # The shop's offset is whole hours, so its hours start with UTC's.
    edge = (datetime.now(UTC) + timedelta(days=HORIZON_DAYS)).replace(
        minute=0, second=0, microsecond=0
    )

    last = api.book(customer, provider, edge)
    beyond = api.book(customer, provider, edge + timedelta(hours=1))

    assert last.status_code == 200, last.json
    assert (beyond.status_code, beyond.json) == (400, TOO_FAR)


def test_a_slot_on_the_day_past_the_horizon_is_refused(api, people, slot):
    provider, customer = people

    inside = api.book(customer, provider, slot(days=HORIZON_DAYS - 1, hour=19))
    outside = api.book(customer, provider, slot(days=HORIZON_DAYS + 1, hour=8))

    assert inside.status_code == 200, inside.json
    assert (outside.status_code, outside.json) == (400, TOO_FAR)


@pytest.mark.parametrize("config_overrides", [{}])  # the default horizon, 90 days
@pytest.mark.parametrize("date", ["9999-12-30", "9999-12-30T10:00:00", "9999-12-30T13:00:00Z"])
def test_the_end_of_time_is_too_far_ahead(app, api, people, date):
    provider, customer = people

    response = api.book(customer, provider, date)

    assert (response.status_code, response.json) == (400, TOO_FAR)
    assert count(app, Appointment) == 0
    assert count(app, Notification) == 0


@pytest.mark.parametrize("config_overrides", [{}])  # the default horizon, 90 days
def test_the_default_horizon_is_ninety_days(api, people, slot):
    provider, customer = people

    assert api.book(customer, provider, slot(days=89, hour=19)).status_code == 200
    refused = api.book(customer, provider, slot(days=91, hour=8))
    assert (refused.status_code, refused.json) == (400, TOO_FAR)


def test_the_contract_errors_come_before_the_horizon(api, people, slot):
    provider, customer = people
    far = slot(days=HORIZON_DAYS + 5, hour=10)

    not_provider = api.book(customer, customer, far)
    yourself = api.book(provider, provider, far)
    too_far = api.book(customer, provider, far)

    assert (not_provider.status_code, not_provider.json) == (
        401,
        {"error": "You can only create appointments with providers"},
    )
    assert yourself.json == {"error": "You can not create appointments with yourself"}
    assert too_far.json == TOO_FAR


# ---- active appointments -------------------------------------------------------------


def book_up_to_the_limit(api, customer, provider, slot):
    return [
        api.book(customer, provider, slot(days=2, hour=9 + n)).json["id"] for n in range(MAX_ACTIVE)
    ]


def test_the_booking_past_the_limit_is_refused(app, api, people, slot):
    provider, customer = people
    booked = book_up_to_the_limit(api, customer, provider, slot)

    refused = api.book(customer, provider, slot(days=3, hour=10))

    assert len(booked) == MAX_ACTIVE
    assert (refused.status_code, refused.json) == (400, TOO_MANY)
    assert count(app, Appointment, Appointment.user_id == customer.id) == MAX_ACTIVE
    assert count(app, Notification) == MAX_ACTIVE  # none for the refused booking


def test_the_limit_is_per_customer(api, people, slot):
    provider, customer = people
    book_up_to_the_limit(api, customer, provider, slot)

    other = api.book(api.person("Other"), provider, slot(days=3, hour=10))
    refused = api.book(customer, provider, slot(days=3, hour=11))

    assert other.status_code == 200, other.json
    assert refused.json == TOO_MANY


def test_cancelling_one_frees_a_place(client, api, people, slot):
    provider, customer = people
    first, *_ = book_up_to_the_limit(api, customer, provider, slot)

    assert cancel(client, customer, first).status_code == 200
    again = api.book(customer, provider, slot(days=3, hour=10))

    assert again.status_code == 200, again.json
    assert api.book(customer, provider, slot(days=3, hour=11)).json == TOO_MANY


def test_past_appointments_do_not_count(app, api, people, slot):
    provider, customer = people
    for days_ago in range(1, MAX_ACTIVE + 2):
        insert_past_appointment(app, customer=customer, provider=provider, days_ago=days_ago)

    booked = book_up_to_the_limit(api, customer, provider, slot)

    assert len(booked) == MAX_ACTIVE
    assert api.book(customer, provider, slot(days=3, hour=10)).json == TOO_MANY


def test_the_contract_errors_come_before_the_limit(api, people, slot):
    provider, customer = people
    book_up_to_the_limit(api, customer, provider, slot)

    taken = api.book(customer, provider, slot(days=2, hour=9))
    past = api.book(customer, provider, slot(days=-1, hour=9))
    off_hours = api.book(customer, provider, slot(days=3, hour=3))
    free = api.book(customer, provider, slot(days=3, hour=10))

    assert taken.json == {"error": "Appointment date is not available"}
    assert past.json == {"error": "Past dates are not permitted"}
    assert off_hours.json == {"error": "Appointment date is not available"}
    assert free.json == TOO_MANY


@pytest.mark.postgres_only
def test_parallel_bookings_of_one_customer_never_pass_the_limit(app, api, people, slot):
    provider, customer = people
    racers = 12
    barrier = threading.Barrier(racers)

    def book(hour):
        client = app.test_client()
        body = {"provider_id": provider.id, "date": slot(days=2, hour=hour).isoformat()}
        barrier.wait(timeout=30)
        response = client.post("/appointments", json=body, headers=customer.headers)
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=racers) as pool:
        answers = list(pool.map(book, range(8, 8 + racers)))

    assert sorted(status for status, _ in answers) == [200] * MAX_ACTIVE + [400] * (
        racers - MAX_ACTIVE
    )
    assert [body for status, body in answers if status == 400] == [TOO_MANY] * (racers - MAX_ACTIVE)
    active = (Appointment.user_id == customer.id, Appointment.canceled_at.is_(None))
    assert count(app, Appointment, *active) == MAX_ACTIVE


# ---- cancelable ----------------------------------------------------------------------


def test_a_canceled_appointment_is_not_cancelable(client, api, people, slot):
    provider, customer = people
    kept = api.book(customer, provider, slot(days=2, hour=9)).json
    canceled = api.book(customer, provider, slot(days=2, hour=10)).json

    answer = cancel(client, customer, canceled["id"])
    shown = {
        who.name: client.get(f"/appointments/{canceled['id']}", headers=who.headers).json
        for who in people
    }
    listed = client.get("/appointments", headers=customer.headers).json

    assert (kept["cancelable"], canceled["cancelable"]) == (True, True)
    assert answer.status_code == 200
    assert (answer.json["canceled_at"] is not None, answer.json["cancelable"]) == (True, False)
    assert {name: body["cancelable"] for name, body in shown.items()} == {
        "Barber": False,
        "Customer": False,
    }
    assert [(row["id"], row["cancelable"]) for row in listed] == [(kept["id"], True)]
