"""Appointments as the contract words them: list, book, follow (GET by id) and cancel.

Every status and error text is checked to the letter, and each refusal in the
contract's order: a request that breaks two rules gets the first rule's answer.
"""

import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import func, select

from gobarber.extensions import db
from gobarber.models import Appointment, MailDelivery
from gobarber.models.mail_delivery import MailKind

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LIST_KEYS = {"id", "date", "past", "cancelable", "provider"}
BOOKING_KEYS = {
    "id",
    "date",
    "user_id",
    "provider_id",
    "canceled_at",
    "past",
    "cancelable",
    "createdAt",
    "updatedAt",
}
DETAIL_KEYS = BOOKING_KEYS | {"provider", "user", "cancellation_mail", "reminder_mail"}
NOT_PROVIDER = "You can only create appointments with providers"
YOURSELF = "You can not create appointments with yourself"
PAST = "Past dates are not permitted"
NOT_AVAILABLE = "Appointment date is not available"
NOT_FOUND = "Appointment not found"
NOT_YOURS = "You don't have permission to cancel this appointment."
TOO_LATE = "You can only cancel appointments 2 hours in advance."


def utc_iso(moment):
    """The contract's date text for a whole second: `2019-07-23T11:00:00.000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_iso(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def insert_appointment(app, *, customer, provider, date, canceled_at=None):
    """Write a row directly, for dates the API would refuse to book (near or past)."""
    with app.app_context():
        row = Appointment(
            user_id=customer.id, provider_id=provider.id, date=date, canceled_at=canceled_at
        )
        db.session.add(row)
        db.session.commit()
        return row.id


def give_avatar(client, person):
    """Upload a small PNG and make it the person's avatar; return the stored file."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "navy").save(buffer, "PNG")
    buffer.seek(0)
    uploaded = client.post(
        "/files",
        data={"file": (buffer, "face.png")},
        headers=person.headers,
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 200, uploaded.json
    updated = client.put("/users", json={"avatar_id": uploaded.json["id"]}, headers=person.headers)
    assert updated.status_code == 200, updated.json
    return uploaded.json


def listed(client, person, **query):
    response = client.get("/appointments", query_string=query, headers=person.headers)
    assert response.status_code == 200, response.json
    return response.json


@pytest.fixture
def people(api):
    """A provider and a customer, the usual pair of a booking."""
    return api.provider("Barber"), api.person("Customer")


# ---- GET /appointments ---------------------------------------------------------------


def test_list_holds_only_own_non_canceled_appointments_ordered_by_date(app, client, api, slot):
    provider, customer = api.provider("Barber"), api.person("Customer")
    other = api.person("Other")
    later = api.book(customer, provider, slot(days=4, hour=10)).json["id"]
    soonest = api.book(customer, provider, slot(days=2, hour=15)).json["id"]
    middle = api.book(customer, provider, slot(days=3, hour=9)).json["id"]
    canceled = api.book(customer, provider, slot(days=2, hour=9)).json["id"]
    assert client.delete(f"/appointments/{canceled}", headers=customer.headers).status_code == 200
    assert api.book(other, provider, slot(days=2, hour=11)).status_code == 200
    past = insert_appointment(
        app, customer=customer, provider=provider, date=slot(days=-1, hour=10)
    )

    rows = listed(client, customer)

    assert [row["id"] for row in rows] == [past, soonest, middle, later]
    assert [(row["past"], row["cancelable"]) for row in rows] == [
        (True, False),
        (False, True),
        (False, True),
        (False, True),
    ]
    assert rows[1]["date"] == utc_iso(slot(days=2, hour=15))


def test_list_shows_the_provider_with_or_without_avatar(client, api, slot):
    plain, pictured = api.provider("Plain"), api.provider("Pictured")
    customer = api.person("Customer")
    avatar = give_avatar(client, pictured)
    api.book(customer, plain, slot(days=2, hour=9))
    api.book(customer, pictured, slot(days=2, hour=10))

    rows = listed(client, customer)

    assert all(set(row) == LIST_KEYS for row in rows)
    assert [row["provider"] for row in rows] == [
        {"id": plain.id, "name": "Plain", "avatar": None},
        {
            "id": pictured.id,
            "name": "Pictured",
            "avatar": {
                "url": f"http://testserver/files/{avatar['path']}",
                "id": avatar["id"],
                "path": avatar["path"],
            },
        },
    ]
    assert all(ISO_MS.match(row["date"]) for row in rows)


def test_list_pages_twenty_at_a_time(client, people, api, slot):
    provider, customer = people
    starts = [slot(days=days, hour=hour) for days in (2, 3) for hour in range(8, 20)]
    starts.append(slot(days=4, hour=8))
    for start in reversed(starts):  # ids in the reverse order of dates
        assert api.book(customer, provider, start).status_code == 200

    first, default = listed(client, customer, page=1), listed(client, customer)
    second, third = listed(client, customer, page=2), listed(client, customer, page=3)

    assert default == first
    assert [row["date"] for row in first] == [utc_iso(start) for start in starts[:20]]
    assert [row["date"] for row in second] == [utc_iso(start) for start in starts[20:]]
    assert third == []


@pytest.mark.parametrize("page", ["0", "-1", "abc", ""])
def test_list_refuses_bad_pages(client, people, page):
    _, customer = people
    response = client.get(f"/appointments?page={page}", headers=customer.headers)
    assert response.status_code == 400
    assert response.json["error"] == "Validation fails"


# ---- POST /appointments --------------------------------------------------------------


def test_booking_answers_the_new_appointment(client, people, api, slot):
    provider, customer = people
    response = api.book(customer, provider, slot(days=2, hour=10))

    assert response.status_code == 200
    body = response.json
    assert set(body) == BOOKING_KEYS
    assert body["date"] == utc_iso(slot(days=2, hour=10))
    assert (body["user_id"], body["provider_id"]) == (customer.id, provider.id)
    assert (body["canceled_at"], body["past"], body["cancelable"]) == (None, False, True)
    assert ISO_MS.match(body["createdAt"]) and ISO_MS.match(body["updatedAt"])
    assert abs(parse_iso(body["createdAt"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert [row["id"] for row in listed(client, customer)] == [body["id"]]


@pytest.mark.parametrize(
    "minute, second, micro", [(0, 0, 0), (37, 0, 0), (37, 12, 345000), (59, 59, 999000)]
)
def test_booking_stores_the_start_of_the_hour(people, api, slot, minute, second, micro):
    provider, customer = people
    start = slot(days=2, hour=10)
    response = api.book(
        customer, provider, start.replace(minute=minute, second=second, microsecond=micro)
    )
    assert response.status_code == 200, response.json
    assert response.json["date"] == utc_iso(start)


@pytest.mark.parametrize(
    "spell",
    [
        pytest.param(
            lambda local: local.replace(tzinfo=None).isoformat(), id="no offset is shop time"
        ),
        pytest.param(lambda local: local.isoformat(), id="shop offset"),
        pytest.param(
            lambda local: local.astimezone(UTC).isoformat().replace("+00:00", "Z"), id="Z"
        ),
        pytest.param(
            lambda local: local.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            id="toISOString",
        ),
        pytest.param(
            lambda local: local.astimezone(ZoneInfo("Asia/Tokyo")).isoformat(), id="+09:00"
        ),
        pytest.param(
            lambda local: local.astimezone(ZoneInfo("Asia/Kolkata")).isoformat(), id="+05:30"
        ),
    ],
)
def test_booking_reads_the_date_in_every_spelling(people, api, slot, spell):
    provider, customer = people
    local = slot(days=2, hour=14)
    response = api.book(customer, provider, spell(local))
    assert response.status_code == 200, response.json
    assert response.json["date"] == utc_iso(local)


def test_booking_takes_the_last_slot_of_the_day(people, api, slot):
    provider, customer = people
    response = api.book(customer, provider, slot(days=2, hour=19).replace(minute=59))
    assert response.status_code == 200, response.json
    assert response.json["date"] == utc_iso(slot(days=2, hour=19))


# Dates for the refusals; "past" is also outside the slots, "now" is the current hour.
WHEN = {
    "future": lambda slot: slot(days=2, hour=10),
    "past": lambda slot: slot(days=-1, hour=10),
    "past outside slots": lambda slot: slot(days=-1, hour=7),
    "now": lambda slot: datetime.now(UTC),
    "outside slots": lambda slot: slot(days=2, hour=7),
}


@pytest.mark.parametrize("when", ["future", "past", "outside slots"])
@pytest.mark.parametrize("target", ["customer", "unknown id"])
def test_booking_refuses_non_providers_first(client, api, slot, target, when):
    customer, other = api.person("Customer"), api.person("Also a customer")
    provider_id = other.id if target == "customer" else 999_999
    response = client.post(
        "/appointments",
        json={"provider_id": provider_id, "date": WHEN[when](slot).isoformat()},
        headers=customer.headers,
    )
    assert response.status_code == 401
    assert response.json == {"error": NOT_PROVIDER}
    assert listed(client, customer) == []


@pytest.mark.parametrize("when", ["future", "past", "outside slots"])
def test_booking_refuses_yourself_before_dates(client, api, slot, when):
    provider = api.provider("Barber")
    response = api.book(provider, provider, WHEN[when](slot))
    assert response.status_code == 400
    assert response.json == {"error": YOURSELF}
    assert listed(client, provider) == []


@pytest.mark.parametrize("when", ["past", "past outside slots", "now"])
def test_booking_refuses_past_hours(client, people, api, slot, when):
    provider, customer = people
    response = api.book(customer, provider, WHEN[when](slot))
    assert response.status_code == 400
    assert response.json == {"error": PAST}
    assert listed(client, customer) == []


@pytest.mark.parametrize("hour, minute", [(7, 0), (7, 59), (20, 0), (23, 30), (0, 0)])
def test_booking_refuses_hours_outside_the_slots(client, people, api, slot, hour, minute):
    provider, customer = people
    response = api.book(customer, provider, slot(days=2, hour=hour).replace(minute=minute))
    assert response.status_code == 400
    assert response.json == {"error": NOT_AVAILABLE}
    assert listed(client, customer) == []


@pytest.mark.parametrize("minute", [0, 30])
def test_booking_refuses_a_taken_slot(client, api, slot, minute):
    provider, first, second = api.provider("Barber"), api.person("First"), api.person("Second")
    assert api.book(first, provider, slot(days=2, hour=10)).status_code == 200

    response = api.book(second, provider, slot(days=2, hour=10).replace(minute=minute))

    assert response.status_code == 400
    assert response.json == {"error": NOT_AVAILABLE}
    assert listed(client, second) == []


def test_booking_the_same_hour_with_another_provider_is_fine(api, slot):
    first, second, customer = api.provider("One"), api.provider("Two"), api.person("Customer")
    assert api.book(customer, first, slot(days=2, hour=10)).status_code == 200
    assert api.book(customer, second, slot(days=2, hour=10)).status_code == 200


def test_a_canceled_slot_can_be_booked_again(client, api, slot):
    provider, first, second = api.provider("Barber"), api.person("First"), api.person("Second")
    booked = api.book(first, provider, slot(days=2, hour=10)).json
    assert client.delete(f"/appointments/{booked['id']}", headers=first.headers).status_code == 200

    again = api.book(second, provider, slot(days=2, hour=10))

    assert again.status_code == 200, again.json
    assert again.json["date"] == booked["date"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda pid, date: {}, id="empty"),
        pytest.param(lambda pid, date: {"date": date}, id="no provider_id"),
        pytest.param(lambda pid, date: {"provider_id": pid}, id="no date"),
        pytest.param(lambda pid, date: {"provider_id": "abc", "date": date}, id="provider abc"),
        pytest.param(lambda pid, date: {"provider_id": None, "date": date}, id="provider null"),
        pytest.param(lambda pid, date: {"provider_id": pid, "date": "tomorrow"}, id="tomorrow"),
        pytest.param(lambda pid, date: {"provider_id": pid, "date": 12.5}, id="date 12.5"),
        pytest.param(lambda pid, date: {"provider_id": pid, "date": None}, id="date null"),
        pytest.param(
            lambda pid, date: {"provider_id": pid, "date": "9999-12-31T23:00:00-03:00"},
            id="date past year 9999 in UTC",
        ),
        pytest.param(lambda pid, date: [pid, date], id="a list"),
    ],
)
def test_booking_refuses_bad_bodies(client, people, slot, body):
    provider, customer = people
    response = client.post(
        "/appointments",
        json=body(provider.id, slot(days=2, hour=10).isoformat()),
        headers=customer.headers,
    )
    assert response.status_code == 400
    assert response.json["error"] == "Validation fails"
    assert listed(client, customer) == []


# ---- DELETE /appointments/:id --------------------------------------------------------


@pytest.mark.parametrize("appointment_id", ["999999", "abc", "0", "-1", "1.5"])
def test_cancel_unknown_appointment(client, people, api, slot, appointment_id):
    provider, customer = people
    api.book(customer, provider, slot(days=2, hour=10))
    response = client.delete(f"/appointments/{appointment_id}", headers=customer.headers)
    assert response.status_code == 404
    assert response.json == {"error": NOT_FOUND}


@pytest.mark.parametrize("who", ["another customer", "its provider"])
def test_cancel_someone_elses_appointment(client, people, api, slot, who):
    provider, customer = people
    stranger = api.person("Stranger") if who == "another customer" else provider
    booked = api.book(customer, provider, slot(days=2, hour=10)).json

    response = client.delete(f"/appointments/{booked['id']}", headers=stranger.headers)

    assert response.status_code == 401
    assert response.json == {"error": NOT_YOURS}
    assert [row["id"] for row in listed(client, customer)] == [booked["id"]]


def test_cancel_twice(app, client, people, api, slot):
    provider, customer = people
    booked = api.book(customer, provider, slot(days=2, hour=10)).json
    assert (
        client.delete(f"/appointments/{booked['id']}", headers=customer.headers).status_code == 200
    )

    response = client.delete(f"/appointments/{booked['id']}", headers=customer.headers)

    assert response.status_code == 400
    assert response.json == {"error": "Appointment already canceled"}
    with app.app_context():
        mails = db.session.scalar(
            select(func.count()).where(MailDelivery.kind == MailKind.CANCELLATION)
        )
    assert mails == 1


@pytest.mark.parametrize(
    "ahead",
    [timedelta(minutes=5), timedelta(hours=1, minutes=59), timedelta(hours=-1), timedelta(days=-2)],
)
def test_cancel_less_than_two_hours_ahead(app, client, people, ahead):
    provider, customer = people
    near = datetime.now(UTC) + ahead
    appointment_id = insert_appointment(app, customer=customer, provider=provider, date=near)

    response = client.delete(f"/appointments/{appointment_id}", headers=customer.headers)

    assert response.status_code == 401
    assert response.json == {"error": TOO_LATE}
    shown = client.get(f"/appointments/{appointment_id}", headers=customer.headers).json
    assert (shown["canceled_at"], shown["cancellation_mail"]) == (None, None)


def test_cancel_just_over_two_hours_ahead(app, client, people):
    provider, customer = people
    soon = datetime.now(UTC) + timedelta(hours=2, minutes=5)
    appointment_id = insert_appointment(app, customer=customer, provider=provider, date=soon)

    response = client.delete(f"/appointments/{appointment_id}", headers=customer.headers)

    assert response.status_code == 200, response.json


@pytest.mark.parametrize(
    "who, canceled, expected",
    [
        pytest.param("stranger", True, (401, NOT_YOURS), id="not yours before canceled"),
        pytest.param("stranger", False, (401, NOT_YOURS), id="not yours before too late"),
        pytest.param("customer", True, (400, "Appointment already canceled"), id="canceled first"),
    ],
)
def test_cancel_refusals_come_in_order(app, client, people, api, who, canceled, expected):
    provider, customer = people
    person = api.person("Stranger") if who == "stranger" else customer
    now = datetime.now(UTC)
    appointment_id = insert_appointment(
        app,
        customer=customer,
        provider=provider,
        date=now + timedelta(minutes=30),
        canceled_at=now - timedelta(minutes=1) if canceled else None,
    )

    response = client.delete(f"/appointments/{appointment_id}", headers=person.headers)

    assert (response.status_code, response.json) == (expected[0], {"error": expected[1]})


def test_cancel_answers_the_canceled_appointment_and_queues_the_mail(
    app, client, people, api, slot
):
    provider, customer = people
    booked = api.book(customer, provider, slot(days=2, hour=10)).json

    response = client.delete(f"/appointments/{booked['id']}", headers=customer.headers)

    assert response.status_code == 200
    body = response.json
    assert set(body) >= DETAIL_KEYS
    kept = ("id", "date", "user_id", "provider_id", "createdAt")
    assert [body[key] for key in kept] == [booked[key] for key in kept]
    assert ISO_MS.match(body["canceled_at"])
    assert abs(parse_iso(body["canceled_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert (body["past"], body["cancelable"]) == (False, False)  # canceled
    assert body["provider"] == {"name": "Barber", "email": provider.email}
    assert body["user"] == {"name": "Customer"}
    assert body["cancellation_mail"]["status"] == "queued"
    assert listed(client, customer) == []
    with app.app_context():
        recipients = db.session.scalars(
            select(MailDelivery.recipient).where(
                MailDelivery.appointment_id == booked["id"],
                MailDelivery.kind == MailKind.CANCELLATION,
            )
        ).all()
    assert recipients == [provider.email]


# ---- GET /appointments/:id -----------------------------------------------------------


@pytest.mark.parametrize("viewer", ["customer", "provider"])
def test_show_to_both_parties_before_and_after_cancel(client, people, api, slot, viewer):
    provider, customer = people
    person = customer if viewer == "customer" else provider
    booked = api.book(customer, provider, slot(days=2, hour=10)).json
    url = f"/appointments/{booked['id']}"

    before = client.get(url, headers=person.headers)
    canceled = client.delete(url, headers=customer.headers).json
    after = client.get(url, headers=person.headers)

    assert before.status_code == 200 and after.status_code == 200
    assert set(before.json) == set(after.json) == set(canceled)
    assert {key: before.json[key] for key in BOOKING_KEYS} == booked
    assert before.json["provider"] == {"name": "Barber", "email": provider.email}
    assert before.json["user"] == {"name": "Customer"}
    assert before.json["cancellation_mail"] is None
    assert after.json["canceled_at"] == canceled["canceled_at"]
    assert after.json["cancellation_mail"]["status"] == "queued"


@pytest.mark.parametrize(
    "pick",
    [
        pytest.param(lambda booked: booked["id"], id="someone else's"),
        pytest.param(lambda booked: 999_999, id="unknown"),
        pytest.param(lambda booked: "abc", id="not a number"),
    ],
)
def test_show_refuses_strangers_and_unknown_ids(client, people, api, slot, pick):
    provider, customer = people
    stranger = api.person("Stranger")
    booked = api.book(customer, provider, slot(days=2, hour=10)).json

    response = client.get(f"/appointments/{pick(booked)}", headers=stranger.headers)

    assert response.status_code == 404
    assert response.json == {"error": NOT_FOUND}
