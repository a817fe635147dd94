"""The provider list (`GET /providers`) and a provider's slots on a day
(`GET /providers/:id/available?date=<ms or ISO 8601>`)."""

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

HOURS = list(range(8, 20))
INVALID_DATE = "Invalid date"
PROVIDER_NOT_FOUND = {"error": "Provider not found"}


def millis(moment):
    return str(int(moment.timestamp() * 1000))


def available(client, person, provider_id, date):
    query = "" if date is None else f"?date={date}"
    return client.get(f"/providers/{provider_id}/available{query}", headers=person.headers)


def free_hours(answer):
    return [int(entry["time"][:2]) for entry in answer.json if entry["available"]]


# ---- GET /providers -------------------------------------------------------------------


def test_only_providers_are_listed(client, api):
    customer = api.person("Customer")
    first = api.provider("Ana Barber")
    second = api.provider("Bruno Barber")
    listed = client.get("/providers", headers=customer.headers)
    assert listed.status_code == 200
    assert sorted(listed.json, key=lambda p: p["id"]) == [
        {
            "id": first.id,
            "name": "Ana Barber",
            "email": first.email,
            "avatar_id": None,
            "avatar": None,
        },
        {
            "id": second.id,
            "name": "Bruno Barber",
            "email": second.email,
            "avatar_id": None,
            "avatar": None,
        },
    ]


def test_no_providers_is_an_empty_list(client, api):
    customer = api.person()
    listed = client.get("/providers", headers=customer.headers)
    assert listed.status_code == 200
    assert listed.json == []


def test_a_providers_avatar_is_listed_with_url_name_and_path(app, client, api):
    provider = api.provider()
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "olive").save(image, "PNG")
    image.seek(0)
    file = client.post("/files", data={"file": (image, "face.png")}, headers=provider.headers).json
    client.put("/users", json={"avatar_id": file["id"]}, headers=provider.headers)
    listed = client.get("/providers", headers=provider.headers).json
    assert listed == [
        {
            "id": provider.id,
            "name": provider.name,
            "email": provider.email,
            "avatar_id": file["id"],
            "avatar": {
                "url": f"{app.config['APP_URL']}/files/{file['path']}",
                "name": "face.png",
                "path": file["path"],
            },
        }
    ]


# ---- GET /providers/:id/available -----------------------------------------------------


def test_one_entry_per_slot_with_shop_local_values(client, api, slot):
    provider, customer = api.provider(), api.person()
    answer = available(client, customer, provider.id, millis(slot(days=1, hour=12)))
    assert answer.status_code == 200
    assert answer.json == [
        {
            "time": f"{hour:02d}:00",
            "value": slot(days=1, hour=hour).isoformat(),
            "available": True,
        }
        for hour in HOURS
    ]
    # Sao Paulo has kept -03:00 all year since 2019.
    assert all(entry["value"].endswith(":00:00-03:00") for entry in answer.json)
    assert answer.json[0]["value"] == slot(days=1, hour=8).strftime("%Y-%m-%dT08:00:00-03:00")


@pytest.mark.parametrize(
    ("config_overrides", "offset"),
    [({"SHOP_TIMEZONE": "Asia/Kolkata"}, "+05:30"), ({"SHOP_TIMEZONE": "UTC"}, "+00:00")],
)
def test_values_carry_the_offset_of_the_shops_time_zone(client, api, slot, offset):
    provider, customer = api.provider(), api.person()
    answer = available(client, customer, provider.id, millis(slot(days=1, hour=12)))
    assert [entry["value"] for entry in answer.json] == [
        slot(days=1, hour=hour).strftime(f"%Y-%m-%dT{hour:02d}:00:00{offset}") for hour in HOURS
    ]


@pytest.mark.parametrize("config_overrides", [{"SHOP_SLOTS": ((9, 0), (14, 0))}])
def test_the_slot_list_is_configurable(client, api, slot):
    provider, customer = api.provider(), api.person()
    answer = available(client, customer, provider.id, millis(slot(days=1, hour=12)))
    assert [entry["time"] for entry in answer.json] == ["09:00", "14:00"]


@pytest.mark.parametrize(
    ("hour", "minute"),
    [(0, 0), (0, 30), (21, 0), (23, 59)],
    ids=["midnight", "half-past-midnight", "21h-next-utc-day", "last-minute"],
)
def test_the_day_is_the_shops_not_utcs(client, api, slot, hour, minute):
    """21:00 in Sao Paulo is already tomorrow in UTC; the shop's day is what counts."""
    provider, customer = api.provider(), api.person()
    moment = slot(days=2, hour=hour) + timedelta(minutes=minute)
    answer = available(client, customer, provider.id, millis(moment))
    assert answer.json[0]["value"] == slot(days=2, hour=8).isoformat()
    assert answer.json[-1]["value"] == slot(days=2, hour=19).isoformat()


def test_a_booked_slot_is_taken_and_freed_again_when_canceled(client, api, slot):
    provider, customer, other = api.provider(), api.person(), api.person()
    booked = api.book(customer, provider, slot(days=1, hour=10))
    assert booked.status_code == 200, booked.json
    day = millis(slot(days=1, hour=12))
    taken = available(client, other, provider.id, day)
    assert free_hours(taken) == [h for h in HOURS if h != 10]
    assert (
        client.delete(f"/appointments/{booked.json['id']}", headers=customer.headers).status_code
        == 200
    )
    assert free_hours(available(client, other, provider.id, day)) == HOURS


def test_a_booking_takes_only_its_own_providers_slot_and_day(client, api, slot):
    provider, colleague, customer = api.provider(), api.provider(), api.person()
    assert api.book(customer, provider, slot(days=2, hour=15)).status_code == 200
    assert free_hours(available(client, customer, colleague.id, millis(slot(days=2)))) == HOURS
    assert free_hours(available(client, customer, provider.id, millis(slot(days=3)))) == HOURS
    on_the_day = available(client, customer, provider.id, millis(slot(days=2)))
    assert free_hours(on_the_day) == [h for h in HOURS if h != 15]


def test_past_slots_of_today_are_taken(app, client, api, slot):
    provider, customer = api.provider(), api.person()
    zone = ZoneInfo(app.config["SHOP_TIMEZONE"])
    before = datetime.now(zone)
    answer = available(client, customer, provider.id, millis(slot(days=0, hour=12)))
    after = datetime.now(zone)
    assert len(answer.json) == len(HOURS)
    for entry in answer.json:
        start = datetime.fromisoformat(entry["value"])
        assert start.date() == before.date() or start.date() == after.date()
        if start <= before:
            assert entry["available"] is False, entry
        elif start > after:
            assert entry["available"] is True, entry


def test_every_slot_of_yesterday_is_taken(client, api, slot):
    provider, customer = api.provider(), api.person()
    answer = available(client, customer, provider.id, millis(slot(days=-1, hour=12)))
    assert answer.status_code == 200
    assert [entry["available"] for entry in answer.json] == [False] * len(HOURS)


@pytest.mark.parametrize(
    "date",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("tomorrow", id="word"),
        pytest.param("2019-07-23T25:00:00", id="iso-hour-25"),
        pytest.param("1563883200000.5", id="fraction"),
        pytest.param("1e12", id="exponent"),
        pytest.param(str(10**16), id="ten-to-the-16"),
        pytest.param("9" * 16, id="sixteen-nines"),
        pytest.param(str(-(10**16)), id="minus-ten-to-the-16"),
        pytest.param("253402300799999", id="last-ms-of-year-9999"),
        pytest.param("-62135596800000", id="first-ms-of-year-1"),
        pytest.param("9" * 400, id="four-hundred-digits"),
    ],
)
def test_a_date_that_names_no_usable_day_is_invalid(client, api, date):
    provider, customer = api.provider(), api.person()
    refused = available(client, customer, provider.id, date)
    assert refused.status_code == 400
    assert refused.json["error"] == INVALID_DATE


def test_the_first_value_of_a_repeated_date_is_read(client, api, slot):
    provider, customer = api.provider(), api.person()
    first, second = millis(slot(days=1)), millis(slot(days=2))
    answer = client.get(
        f"/providers/{provider.id}/available?date={first}&date={second}",
        headers=customer.headers,
    )
    assert answer.json[0]["value"] == slot(days=1, hour=8).isoformat()


@pytest.mark.parametrize("who", ["unknown", "customer", "not-a-number", "zero", "too-big"])
def test_only_a_provider_has_slots(client, api, slot, who):
    customer = api.person()
    provider_id = {
        "unknown": "987654",
        "customer": str(customer.id),
        "not-a-number": "abc",
        "zero": "0",
        "too-big": str(2**63),
    }[who]
    missing = available(client, customer, provider_id, millis(slot(days=1)))
    assert missing.status_code == 404
    assert missing.json == PROVIDER_NOT_FOUND


def test_epoch_millis_of_a_utc_midnight_are_read_in_shop_time(client, api):
    """The mobile client sends the device's midnight; 2019-07-23T00:00Z is July 22 in SP."""
    provider, customer = api.provider(), api.person()
    utc_midnight = datetime(2019, 7, 23, tzinfo=UTC)
    answer = available(client, customer, provider.id, millis(utc_midnight))
    assert answer.json[0] == {
        "time": "08:00",
        "value": "2019-07-22T08:00:00-03:00",
        "available": False,
    }
    assert answer.json[-1]["value"] == "2019-07-22T19:00:00-03:00"
