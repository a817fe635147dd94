"""The shop's clock: DST-proof days and slots, and the helpers that read and word dates.

The app runs with a shop zone that has daylight saving time (New York), so the next
transition changes the UTC offset between two days that both list 08:00..19:00 locally.
"""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from gobarber import shop_time
from gobarber.errors import Invalid
from tests.wording import booking_text

ZONE = ZoneInfo("America/New_York")
SLOT_TIMES = [f"{hour:02d}:00" for hour in range(8, 20)]


@pytest.fixture
def config_overrides():
    # The next DST change may be further ahead than the default booking horizon.
    return {"SHOP_TIMEZONE": "America/New_York", "BOOKING_HORIZON_DAYS": 366}


def offset_at(day, hour=12):
    return datetime.combine(day, time(hour), tzinfo=ZONE).utcoffset()


def next_transition():
    """Return the first day, after tomorrow, whose UTC offset differs from the day before."""
    first = datetime.now(ZONE).date() + timedelta(days=2)
    for day in (first + timedelta(days=n) for n in range(366)):
        if offset_at(day) != offset_at(day - timedelta(days=1)):
            return day
    raise AssertionError(f"no DST change in {ZONE.key} within a year of {first}")


def offset_text(offset):
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    return f"{hours:+03d}:{rest // 60:02d}"


@pytest.fixture
def transition():
    """The days either side of the next DST change: (before, after)."""
    day = next_transition()
    before, after = day - timedelta(days=1), day + timedelta(days=1)
    assert {offset_text(offset_at(before)), offset_text(offset_at(after))} == {"-05:00", "-04:00"}
    return before, after


def available(client, provider, day):
    noon = datetime.combine(day, time(12), tzinfo=ZONE)
    response = client.get(
        f"/providers/{provider.id}/available",
        query_string={"date": int(noon.timestamp() * 1000)},
        headers=provider.headers,
    )
    assert response.status_code == 200, response.json
    return response.json


# ---- DST ------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [0, 1], ids=["day before", "day after"])
def test_availability_lists_local_slots_with_that_days_offset(client, api, transition, side):
    provider = api.provider("Barber")
    day = transition[side]

    slots = available(client, provider, day)

    offset = offset_text(offset_at(day))
    assert [entry["time"] for entry in slots] == SLOT_TIMES
    assert [entry["value"] for entry in slots] == [
        f"{day.isoformat()}T{clock}:00{offset}" for clock in SLOT_TIMES
    ]
    assert all(entry["available"] for entry in slots)


@pytest.mark.parametrize("side", [0, 1], ids=["day before", "day after"])
def test_booking_eight_local_stores_that_days_utc_instant(client, api, transition, side):
    provider, customer = api.provider("Barber"), api.person("Cliente")
    day = transition[side]
    utc_hour = 8 - int(offset_at(day).total_seconds()) // 3600  # 13 in winter, 12 in summer

    booked = api.book(customer, provider, f"{day.isoformat()}T08:00:00")

    assert booked.status_code == 200, booked.json
    assert booked.json["date"] == f"{day.isoformat()}T{utc_hour:02d}:00:00.000Z"
    assert [entry["available"] for entry in available(client, provider, day)] == [False] + [
        True
    ] * 11
    notifications = client.get("/notifications", headers=provider.headers).json
    assert [n["content"] for n in notifications] == [
        booking_text("Cliente", datetime.combine(day, time(8)))
    ]


def test_both_sides_store_different_utc_hours(api, transition):
    provider, customer = api.provider("Barber"), api.person("Cliente")
    stored = [
        api.book(customer, provider, f"{day.isoformat()}T08:00:00").json["date"][11:]
        for day in transition
    ]
    assert sorted(stored) == ["12:00:00.000Z", "13:00:00.000Z"]


@pytest.mark.parametrize("side", [0, 1], ids=["day before", "day after"])
def test_schedule_day_follows_that_days_offset(client, api, transition, side):
    provider, customer = api.provider("Barber"), api.person("Cliente")
    day = transition[side]
    first = api.book(customer, provider, f"{day.isoformat()}T08:00:00").json["id"]
    last = api.book(customer, provider, f"{day.isoformat()}T19:00:00").json["id"]
    for clock in ("00:05", "23:55"):
        response = client.get(
            "/schedule",
            query_string={"date": f"{day.isoformat()}T{clock}:00"},
            headers=provider.headers,
        )
        assert [row["id"] for row in response.json] == [first, last]


def test_the_transition_day_is_not_24_hours_long(app):
    day = next_transition()
    with app.app_context():
        start, end = shop_time.day_bounds(datetime.combine(day, time(12), tzinfo=ZONE))
    assert end - start in (timedelta(hours=23), timedelta(hours=25))
    assert start == datetime.combine(day, time(0), tzinfo=ZONE)


# ---- unit tests of gobarber.shop_time -----------------------------------------------


@pytest.mark.parametrize(
    "moment, text",
    [
        (datetime(2019, 7, 23, 11, 0, tzinfo=UTC), "2019-07-23T11:00:00.000Z"),
        (datetime(2019, 7, 23, 11, 5, 9, 123456, tzinfo=UTC), "2019-07-23T11:05:09.123Z"),
        (datetime(2019, 7, 23, 11, 0, 0, 999, tzinfo=UTC), "2019-07-23T11:00:00.000Z"),
        (
            datetime(2019, 7, 23, 8, 0, tzinfo=ZoneInfo("America/Sao_Paulo")),
            "2019-07-23T11:00:00.000Z",
        ),
        (datetime(2019, 12, 31, 22, 30, tzinfo=ZONE), "2020-01-01T03:30:00.000Z"),
        (None, None),
    ],
)
def test_iso_utc(moment, text):
    assert shop_time.iso_utc(moment) == text


@pytest.mark.parametrize(
    "moment, text",
    [
        (datetime(2019, 8, 5, 8, 0, tzinfo=ZONE), "dia 05 de agosto, às 8:00h"),
        (datetime(2019, 7, 23, 8, 0, tzinfo=ZONE), "dia 23 de julho, às 8:00h"),
        (datetime(2019, 3, 1, 19, 0, tzinfo=ZONE), "dia 01 de março, às 19:00h"),
        (datetime(2019, 12, 9, 0, 0, tzinfo=ZONE), "dia 09 de dezembro, às 0:00h"),
        # Worded in shop time whatever zone the moment comes in.
        (datetime(2019, 8, 5, 12, 0, tzinfo=UTC), "dia 05 de agosto, às 8:00h"),
        (datetime(2019, 1, 5, 13, 0, tzinfo=UTC), "dia 05 de janeiro, às 8:00h"),
        (datetime(2019, 8, 6, 2, 0, tzinfo=UTC), "dia 05 de agosto, às 22:00h"),
    ],
)
def test_describe_pt_br(app, moment, text):
    with app.app_context():
        assert shop_time.describe_pt_br(moment) == text


@pytest.mark.parametrize(
    "raw, moment",
    [
        ("1563879600000", datetime(2019, 7, 23, 11, 0, tzinfo=UTC)),
        ("1563879600123", datetime(2019, 7, 23, 11, 0, 0, 123000, tzinfo=UTC)),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_from_millis(raw, moment):
    assert shop_time.from_millis(raw) == moment


@pytest.mark.parametrize("raw", ["abc", "", "12.5", "1e12", None, "9" * 20, "-" + "9" * 20])
def test_from_millis_refuses(raw):
    with pytest.raises(Invalid) as refused:
        shop_time.from_millis(raw)
    assert (refused.value.status, refused.value.message) == (400, "Invalid date")


@pytest.mark.parametrize(
    "raw, moment",
    [
        ("2019-07-23T11:00:00.000Z", datetime(2019, 7, 23, 11, 0, tzinfo=UTC)),
        ("2019-07-23T08:00:00-03:00", datetime(2019, 7, 23, 11, 0, tzinfo=UTC)),
        ("2019-07-23T07:00:00", datetime(2019, 7, 23, 11, 0, tzinfo=UTC)),  # New York, EDT
        ("2019-01-23T06:00:00", datetime(2019, 1, 23, 11, 0, tzinfo=UTC)),  # New York, EST
        (" 2019-01-23 ", datetime(2019, 1, 23, 5, 0, tzinfo=UTC)),
    ],
)
def test_from_iso(app, raw, moment):
    with app.app_context():
        parsed = shop_time.from_iso(raw)
    assert parsed == moment
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "raw", ["tomorrow", "", "2019-02-30T10:00:00", "2019-07-23T25:00:00", None, 123]
)
def test_from_iso_refuses(app, raw):
    with app.app_context(), pytest.raises(Invalid) as refused:
        shop_time.from_iso(raw)
    assert (refused.value.status, refused.value.message) == (400, "Invalid date")


def test_hour_start_and_slots_are_shop_local(app):
    with app.app_context():
        start = shop_time.hour_start(datetime(2019, 7, 23, 12, 37, 5, tzinfo=UTC))
        slots = shop_time.slots_of_day(datetime(2019, 7, 24, 3, 0, tzinfo=UTC))
    assert start == datetime(2019, 7, 23, 8, 0, tzinfo=ZONE)
    assert [slot.isoformat() for slot in slots] == [
        f"2019-07-23T{clock}:00-04:00" for clock in SLOT_TIMES
    ]
