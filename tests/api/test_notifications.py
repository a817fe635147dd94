"""Notifications: the provider's note of a new booking, the newest-first list
(`GET /notifications`) and marking one read (`PUT /notifications/:id`)."""

import re
from datetime import UTC, date, timedelta

import pytest

from tests.wording import booking_text

# Written out rather than asked of babel, so the test does not share the app's wording code.
NOT_FOUND = {"error": "Notification not found"}
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def days_until_next_months(day_of_month, slot):
    """How many days from today to `day_of_month` of next month, in shop time."""
    today = slot(days=0, hour=0).date()
    first_of_next = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    return (date(first_of_next.year, first_of_next.month, day_of_month) - today).days


def notifications_of(client, person):
    listed = client.get("/notifications", headers=person.headers)
    assert listed.status_code == 200
    return listed.json


@pytest.mark.parametrize("day_of_month", [5, 23], ids=["single-digit-day", "two-digit-day"])
@pytest.mark.parametrize("hour", [8, 19])
def test_a_booking_notifies_the_provider_in_pt_br(client, api, slot, day_of_month, hour):
    provider, customer = api.provider("Barber"), api.person("Maria Silva")
    start = slot(days=days_until_next_months(day_of_month, slot), hour=hour)
    assert api.book(customer, provider, start).status_code == 200
    [notification] = notifications_of(client, provider)
    assert notification["content"] == booking_text("Maria Silva", start)
    assert f"dia {day_of_month:02d} de " in notification["content"]
    assert notification["content"].endswith(f"às {hour}:00h")


def test_the_notification_words_the_shops_hour_even_when_booked_in_utc(client, api, slot):
    provider, customer = api.provider(), api.person("João")
    start = slot(days=3, hour=8)
    in_utc = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api.book(customer, provider, in_utc).status_code == 200
    [notification] = notifications_of(client, provider)
    assert notification["content"] == booking_text("João", start)
    assert notification["content"].endswith("às 8:00h")


def test_a_notification_has_the_contract_keys(client, api, slot):
    provider, customer = api.provider(), api.person("Ana")
    assert api.book(customer, provider, slot(days=1, hour=9)).status_code == 200
    [notification] = notifications_of(client, provider)
    assert list(notification) == ["_id", "content", "user", "read", "createdAt", "updatedAt"]
    assert isinstance(notification["_id"], str)
    assert notification["_id"].isdigit()
    assert notification["user"] == provider.id
    assert notification["read"] is False
    assert re.fullmatch(TIMESTAMP, notification["createdAt"])
    assert re.fullmatch(TIMESTAMP, notification["updatedAt"])


def test_the_list_is_newest_first(client, api, slot):
    provider = api.provider()
    customers = [api.person(f"Customer {n}") for n in range(3)]
    for hour, customer in zip((15, 9, 12), customers, strict=True):
        assert api.book(customer, provider, slot(days=2, hour=hour)).status_code == 200
    listed = notifications_of(client, provider)
    assert [n["content"] for n in listed] == [
        booking_text("Customer 2", slot(days=2, hour=12)),
        booking_text("Customer 1", slot(days=2, hour=9)),
        booking_text("Customer 0", slot(days=2, hour=15)),
    ]


def test_the_list_holds_the_twenty_newest(client, api, slot):
    provider, customer = api.provider(), api.person("Regular")
    booked = [slot(days=days, hour=hour) for days in (1, 2) for hour in range(8, 20)][:21]
    for start in booked:
        assert api.book(customer, provider, start).status_code == 200
    listed = notifications_of(client, provider)
    assert [n["content"] for n in listed] == [
        booking_text("Regular", start) for start in reversed(booked[1:])
    ]


def test_a_customer_reads_their_own_empty_list(client, api, slot):
    provider, customer = api.provider(), api.person()
    assert api.book(customer, provider, slot(days=1)).status_code == 200
    assert notifications_of(client, customer) == []


def test_a_user_sees_only_their_own_notifications(client, api, slot):
    first, second, customer = api.provider(), api.provider(), api.person("Carla")
    assert api.book(customer, first, slot(days=1, hour=10)).status_code == 200
    assert notifications_of(client, second) == []
    assert [n["user"] for n in notifications_of(client, first)] == [first.id]


def test_marking_read_returns_the_notification_and_keeps_it_read(client, api, slot):
    provider, customer = api.provider(), api.person("Duda")
    assert api.book(customer, provider, slot(days=1, hour=11)).status_code == 200
    [unread] = notifications_of(client, provider)
    marked = client.put(f"/notifications/{unread['_id']}", headers=provider.headers)
    assert marked.status_code == 200
    assert marked.json == {
        **unread,
        "read": True,
        "updatedAt": marked.json["updatedAt"],
    }
    assert marked.json["updatedAt"] >= unread["updatedAt"]
    assert notifications_of(client, provider) == [marked.json]
    again = client.put(f"/notifications/{unread['_id']}", headers=provider.headers)
    assert again.status_code == 200
    assert again.json["read"] is True


def test_marking_one_leaves_the_others_unread(client, api, slot):
    provider = api.provider()
    for hour in (9, 10):
        assert api.book(api.person(), provider, slot(days=1, hour=hour)).status_code == 200
    newest, oldest = notifications_of(client, provider)
    client.put(f"/notifications/{oldest['_id']}", headers=provider.headers)
    listed = notifications_of(client, provider)
    assert [(n["_id"], n["read"]) for n in listed] == [
        (newest["_id"], False),
        (oldest["_id"], True),
    ]


@pytest.mark.parametrize("who", ["other-provider", "the-customer"])
def test_someone_elses_notification_is_not_found(client, api, slot, who):
    provider, other, customer = api.provider(), api.provider(), api.person()
    assert api.book(customer, provider, slot(days=1)).status_code == 200
    [notification] = notifications_of(client, provider)
    intruder = other if who == "other-provider" else customer
    refused = client.put(f"/notifications/{notification['_id']}", headers=intruder.headers)
    assert refused.status_code == 404
    assert refused.json == NOT_FOUND
    assert notifications_of(client, provider) == [notification]


@pytest.mark.parametrize(
    "notification_id",
    ["987654", "0", "-1", "abc", "1.5", "1e3", str(2**31), str(2**64), "%20"],
)
def test_an_unknown_or_malformed_id_is_not_found(client, api, notification_id):
    person = api.provider()
    refused = client.put(f"/notifications/{notification_id}", headers=person.headers)
    assert refused.status_code == 404
    assert refused.json == NOT_FOUND
