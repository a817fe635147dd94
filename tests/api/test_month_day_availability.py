"""The days of a month and the hours of a day still open to booking with a provider
(`GET /providers/:id/month-availability?year=&month=` and
`GET /providers/:id/day-availability?year=&month=&day=`).

Most tests stop the shop's clock (the `now` fixture: TODAY at 12:30 in the shop), so that
which hours are past and where the booking horizon ends are known to the minute.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import jsonschema_rs
import pytest
from sqlalchemy import update

from gobarber import shop_time
from gobarber.extensions import db
from gobarber.models import User

HOURS = list(range(8, 20))
TODAY = date(2031, 1, 20)
NOON_THIRTY = time(12, 30)
VALIDATION_FAILS = "Validation fails"
NOT_A_DAY = "not a day of that month"
PROVIDER_NOT_FOUND = {"error": "Provider not found"}
TOO_FAR_AHEAD = {"error": "Appointment date is too far ahead"}


def zone_of(app):
    return ZoneInfo(app.config["SHOP_TIMEZONE"])


def at(app, day, hour, minute=0):
    """Return the shop-local moment `day` at `hour`:`minute`."""
    return datetime.combine(day, time(hour, minute), tzinfo=zone_of(app))


@pytest.fixture
def stop_clock(app, monkeypatch):
    """Stop the shop's clock: `stop_clock(day, at=time)` makes it that shop-local moment."""

    def stop(day=TODAY, at=NOON_THIRTY):
        moment = datetime.combine(day, at, tzinfo=zone_of(app)).astimezone(UTC)
        monkeypatch.setattr(shop_time, "now", lambda: moment)

    return stop


@pytest.fixture
def now(stop_clock):
    """The shop's clock stopped at TODAY, 12:30 shop time."""
    stop_clock()


def month_of(client, person, provider_id, year, month):
    return client.get(
        f"/providers/{provider_id}/month-availability",
        query_string={"year": year, "month": month},
        headers=person.headers,
    )


def day_of(client, person, provider_id, day):
    return client.get(
        f"/providers/{provider_id}/day-availability",
        query_string={"year": day.year, "month": day.month, "day": day.day},
        headers=person.headers,
    )


def free_days(answer):
    assert answer.status_code == 200, answer.json
    return [entry["day"] for entry in answer.json if entry["available"]]


def free_hours(answer):
    assert answer.status_code == 200, answer.json
    return [entry["hour"] for entry in answer.json if entry["available"]]


def span(first, last):
    """Return first..last, both included: days of a month or hours of a day."""
    return list(range(first, last + 1))


def book_day(api, customer, provider, day, app):
    """Book every slot of `day`; return the appointment ids."""
    ids = []
    for hour in HOURS:
        booked = api.book(customer, provider, at(app, day, hour))
        assert booked.status_code == 200, booked.json
        ids.append(booked.json["id"])
    return ids


# ---- shapes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "month", "length"),
    [
        (2031, 1, 31),
        (2031, 2, 28),
        (2032, 2, 29),
        (2000, 2, 29),
        (2100, 2, 28),
        (2031, 4, 30),
        (2031, 12, 31),
    ],
    ids=["31", "28", "29-leap", "29-leap-400", "28-century", "30", "december"],
)
def test_a_month_lists_each_of_its_days(client, api, now, year, month, length):
    provider, customer = api.provider(), api.person()
    answer = month_of(client, customer, provider.id, year, month)
    assert answer.status_code == 200
    assert [entry["day"] for entry in answer.json] == span(1, length)
    assert all(set(entry) == {"day", "available"} for entry in answer.json)
    assert all(isinstance(entry["available"], bool) for entry in answer.json)


def test_a_day_lists_each_slot_by_its_hour(client, api, now):
    provider, customer = api.provider(), api.person()
    answer = day_of(client, customer, provider.id, TODAY + timedelta(days=1))
    assert answer.status_code == 200
    assert answer.json == [{"hour": hour, "available": True} for hour in HOURS]


@pytest.mark.parametrize("config_overrides", [{"SHOP_SLOTS": ((9, 0), (14, 0))}])
def test_the_days_hours_are_the_shops_slots(client, api, now):
    provider, customer = api.provider(), api.person()
    answer = day_of(client, customer, provider.id, TODAY + timedelta(days=1))
    assert answer.json == [{"hour": 9, "available": True}, {"hour": 14, "available": True}]


def test_the_answers_match_the_document(client, api, now):
    provider, customer = api.provider(), api.person()
    document = client.get("/openapi.json").json
    answers = {
        "month-availability": month_of(client, customer, provider.id, 2031, 1),
        "day-availability": day_of(client, customer, provider.id, TODAY),
    }
    for route, answer in answers.items():
        operation = document["paths"][f"/providers/{{provider_id}}/{route}"]["get"]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        validator = jsonschema_rs.validator_for(
            {**schema, "components": document["components"]}, validate_formats=True
        )
        assert validator.is_valid(answer.json), route
        assert operation["security"] == [{"bearerAuth": []}]
        assert set(operation["responses"]) == {"200", "400", "404"}
    day_route = document["paths"]["/providers/{provider_id}/day-availability"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in day_route["parameters"]] == [
        ("provider_id", "path", True),
        ("year", "query", True),
        ("month", "query", True),
        ("day", "query", True),
    ]


# ---- the clock --------------------------------------------------------------------------


def test_today_is_open_while_it_has_a_free_hour_ahead(client, api, now):
    provider, customer = api.provider(), api.person()
    assert free_hours(day_of(client, customer, provider.id, TODAY)) == span(13, 19)
    assert TODAY.day in free_days(month_of(client, customer, provider.id, 2031, 1))


@pytest.mark.parametrize(
    ("clock", "hours", "open_today"),
    [(time(18, 59), [19], True), (time(19, 0), [], False), (time(23, 59), [], False)],
    ids=["18:59", "19:00", "23:59"],
)
def test_today_closes_with_its_last_hour(client, api, stop_clock, clock, hours, open_today):
    stop_clock(at=clock)
    provider, customer = api.provider(), api.person()
    assert free_hours(day_of(client, customer, provider.id, TODAY)) == hours
    assert (TODAY.day in free_days(month_of(client, customer, provider.id, 2031, 1))) is open_today


def test_past_days_and_their_hours_are_not_available(client, api, now):
    provider, customer = api.provider(), api.person()
    assert free_days(month_of(client, customer, provider.id, 2031, 1)) == span(20, 31)
    assert free_days(month_of(client, customer, provider.id, 2030, 12)) == []
    assert free_days(month_of(client, customer, provider.id, 2, 1)) == []
    assert free_hours(day_of(client, customer, provider.id, TODAY - timedelta(days=1))) == []


def test_without_a_stopped_clock_past_hours_of_today_are_taken(app, client, api, slot):
    provider, customer = api.provider(), api.person()
    before = datetime.now(zone_of(app))
    answer = day_of(client, customer, provider.id, before.date())
    after = datetime.now(zone_of(app))
    for entry in answer.json:
        start = at(app, before.date(), entry["hour"])
        if start <= before:
            assert entry["available"] is False, entry
        elif start > after:
            assert entry["available"] is True, entry
    tomorrow = slot(days=1).date()
    assert free_hours(day_of(client, customer, provider.id, tomorrow)) == HOURS


# ---- bookings ---------------------------------------------------------------------------


def test_a_booked_hour_is_taken_and_freed_again_when_canceled(app, client, api, now):
    provider, customer, other = api.provider(), api.person(), api.person()
    day = TODAY + timedelta(days=2)
    booked = api.book(customer, provider, at(app, day, 10))
    assert booked.status_code == 200, booked.json
    assert free_hours(day_of(client, other, provider.id, day)) == [h for h in HOURS if h != 10]
    assert day.day in free_days(month_of(client, other, provider.id, day.year, day.month))
    canceled = client.delete(f"/appointments/{booked.json['id']}", headers=customer.headers)
    assert canceled.status_code == 200, canceled.json
    assert free_hours(day_of(client, other, provider.id, day)) == HOURS


def test_a_fully_booked_day_is_not_available_until_an_hour_is_canceled(app, client, api, now):
    provider, customer, other = api.provider(), api.person(), api.person()
    day = TODAY + timedelta(days=2)
    ids = book_day(api, customer, provider, day, app)
    assert free_hours(day_of(client, other, provider.id, day)) == []
    month = month_of(client, other, provider.id, 2031, 1)
    assert free_days(month) == [d for d in span(20, 31) if d != day.day]
    canceled = client.delete(f"/appointments/{ids[3]}", headers=customer.headers)
    assert canceled.status_code == 200, canceled.json
    assert free_hours(day_of(client, other, provider.id, day)) == [HOURS[3]]
    assert free_days(month_of(client, other, provider.id, 2031, 1)) == span(20, 31)


def test_a_booking_takes_only_its_own_providers_hour(app, client, api, now):
    provider, colleague, customer = api.provider(), api.provider(), api.person()
    day = TODAY + timedelta(days=2)
    book_day(api, customer, provider, day, app)
    assert free_hours(day_of(client, customer, colleague.id, day)) == HOURS
    assert free_days(month_of(client, customer, colleague.id, 2031, 1)) == span(20, 31)


def test_today_with_every_hour_ahead_booked_is_not_available(app, client, api, now):
    provider, customer = api.provider(), api.person()
    for hour in span(13, 19):
        assert api.book(customer, provider, at(app, TODAY, hour)).status_code == 200
    assert free_hours(day_of(client, customer, provider.id, TODAY)) == []
    assert free_days(month_of(client, customer, provider.id, 2031, 1)) == span(21, 31)


@pytest.mark.parametrize(
    "day",
    [TODAY, TODAY + timedelta(days=3)],
    ids=["today", "in-three-days"],
)
def test_the_free_hours_are_those_of_available(app, client, api, now, day):
    provider, customer = api.provider(), api.person()
    for hour in (9, 14, 17):  # the next day's bookings are not this day's
        booked = api.book(customer, provider, at(app, day + timedelta(days=1), hour))
        assert booked.status_code == 200, booked.json
    kept = api.book(customer, provider, at(app, day, 15))
    canceled = api.book(customer, provider, at(app, day, 16))
    assert kept.status_code == canceled.status_code == 200
    client.delete(f"/appointments/{canceled.json['id']}", headers=customer.headers)
    millis = int(at(app, day, 12).timestamp() * 1000)
    slots = client.get(
        f"/providers/{provider.id}/available?date={millis}", headers=customer.headers
    ).json
    by_hour = free_hours(day_of(client, customer, provider.id, day))
    assert by_hour == [int(entry["time"][:2]) for entry in slots if entry["available"]]
    assert 15 not in by_hour and 16 in by_hour


# ---- the booking horizon ----------------------------------------------------------------


@pytest.mark.parametrize("config_overrides", [{"BOOKING_HORIZON_DAYS": 10}])
def test_days_and_hours_past_the_horizon_are_not_available(client, api, now):
    provider, customer = api.provider(), api.person()
    last = TODAY + timedelta(days=10)  # Jan 30: the horizon ends at 12:30
    assert free_days(month_of(client, customer, provider.id, 2031, 1)) == span(20, 30)
    assert free_days(month_of(client, customer, provider.id, 2031, 2)) == []
    assert free_hours(day_of(client, customer, provider.id, last)) == span(8, 12)
    assert free_hours(day_of(client, customer, provider.id, last + timedelta(days=1))) == []


@pytest.mark.parametrize("config_overrides", [{"BOOKING_HORIZON_DAYS": 10}])
@pytest.mark.parametrize("days", [0, 10], ids=["today", "the-horizons-day"])
def test_an_hour_is_available_exactly_when_booking_it_succeeds(app, client, api, now, days):
    provider, customer = api.provider(), api.person()
    day = TODAY + timedelta(days=days)
    answer = day_of(client, customer, provider.id, day)
    assert answer.status_code == 200
    for entry in answer.json:
        booked = api.book(customer, provider, at(app, day, entry["hour"]))
        assert (booked.status_code == 200) is entry["available"], (entry, booked.json)
    if days:
        assert api.book(customer, provider, at(app, day, 13)).json == TOO_FAR_AHEAD


# ---- the shop's time zone -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("config_overrides", "booked", "neighbour"),
    [
        # 16:00 to 19:00 in Los Angeles (UTC-8) are already the next day in UTC.
        ({"SHOP_TIMEZONE": "America/Los_Angeles"}, date(2031, 1, 31), date(2031, 2, 1)),
        # 08:00 in Tokyo (UTC+9) is still the day before in UTC.
        ({"SHOP_TIMEZONE": "Asia/Tokyo"}, date(2031, 2, 1), date(2031, 1, 31)),
    ],
    ids=["last-day-of-a-month-west", "first-day-of-a-month-east"],
)
def test_a_booking_counts_in_the_shops_month(app, client, api, now, booked, neighbour):
    provider, customer = api.provider(), api.person()
    assert any(at(app, booked, hour).astimezone(UTC).date() == neighbour for hour in HOURS)
    book_day(api, customer, provider, booked, app)
    booked_month = month_of(client, customer, provider.id, booked.year, booked.month)
    assert booked.day not in free_days(booked_month)
    assert free_hours(day_of(client, customer, provider.id, booked)) == []
    other_month = month_of(client, customer, provider.id, neighbour.year, neighbour.month)
    assert neighbour.day in free_days(other_month)
    assert free_hours(day_of(client, customer, provider.id, neighbour)) == HOURS


@pytest.mark.parametrize(
    "config_overrides",
    [{"SHOP_TIMEZONE": "America/New_York"}, {"SHOP_TIMEZONE": "America/Los_Angeles"}],
    ids=["utc-minus-5", "utc-minus-8"],
)
def test_a_booking_at_the_shops_19h_is_on_the_shops_day_not_utcs_next(app, client, api, now):
    provider, customer = api.provider(), api.person()
    day = TODAY + timedelta(days=2)
    evening = at(app, day, 19)
    assert evening.astimezone(UTC).date() == day + timedelta(days=1)
    assert api.book(customer, provider, evening).status_code == 200
    assert free_hours(day_of(client, customer, provider.id, day)) == span(8, 18)
    assert free_hours(day_of(client, customer, provider.id, day + timedelta(days=1))) == HOURS


# ---- the provider -----------------------------------------------------------------------

ROUTES = {
    "month": lambda provider_id: f"/providers/{provider_id}/month-availability?year=2031&month=1",
    "day": lambda provider_id: (
        f"/providers/{provider_id}/day-availability?year=2031&month=1&day=22"
    ),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("who", ["unknown", "customer", "not-a-number", "zero", "too-big"])
def test_only_a_provider_has_days_and_hours_as_with_available(client, api, now, route, who):
    customer = api.person()
    provider_id = {
        "unknown": "987654",
        "customer": str(customer.id),
        "not-a-number": "abc",
        "zero": "0",
        "too-big": str(2**63),
    }[who]
    missing = client.get(ROUTES[route](provider_id), headers=customer.headers)
    slots = client.get(
        f"/providers/{provider_id}/available?date=1926777600000", headers=customer.headers
    )
    assert (missing.status_code, missing.json) == (slots.status_code, slots.json)
    assert (missing.status_code, missing.json) == (404, PROVIDER_NOT_FOUND)


@pytest.mark.parametrize("route", ["month", "day"])
def test_a_provider_may_ask_for_their_own_days(client, api, now, route):
    provider = api.provider()
    assert client.get(ROUTES[route](provider.id), headers=provider.headers).status_code == 200


# ---- refused input --------------------------------------------------------------------------

MONTH_CASES = [
    pytest.param({}, {"year": "required", "month": "required"}, id="nothing"),
    pytest.param({"year": 2031}, {"month": "required"}, id="no-month"),
    pytest.param({"year": "abc", "month": 1}, {"year": "must be a whole number"}, id="word"),
    pytest.param({"year": 2031, "month": "1.5"}, {"month": "must be a whole number"}, id="half"),
    pytest.param({"year": 2031, "month": ""}, {"month": "must be a whole number"}, id="empty"),
    pytest.param({"year": 2031, "month": 0}, {"month": "at least 1"}, id="month-0"),
    pytest.param({"year": 2031, "month": 13}, {"month": "at most 12"}, id="month-13"),
    pytest.param({"year": 1, "month": 1}, {"year": "at least 2"}, id="year-1"),
    pytest.param({"year": 9999, "month": 12}, {"year": "at most 9998"}, id="year-9999"),
    pytest.param({"year": "9" * 400, "month": 1}, {"year": "at most 9998"}, id="400-digits"),
    pytest.param({"year": -2031, "month": 1}, {"year": "at least 2"}, id="negative"),
]
DAY_CASES = [
    pytest.param({}, {"year": "required", "month": "required", "day": "required"}, id="nothing"),
    pytest.param({"year": 2031, "month": 1}, {"day": "required"}, id="no-day"),
    pytest.param({"year": 2031, "month": 2, "day": 30}, {"day": NOT_A_DAY}, id="feb-30"),
    pytest.param({"year": 2031, "month": 2, "day": 29}, {"day": NOT_A_DAY}, id="feb-29-2031"),
    pytest.param({"year": 2100, "month": 2, "day": 29}, {"day": NOT_A_DAY}, id="feb-29-2100"),
    pytest.param({"year": 2031, "month": 4, "day": 31}, {"day": NOT_A_DAY}, id="apr-31"),
    pytest.param({"year": 2031, "month": 1, "day": 0}, {"day": "at least 1"}, id="day-0"),
    pytest.param({"year": 2031, "month": 1, "day": 32}, {"day": "at most 31"}, id="day-32"),
    pytest.param(
        {"year": 2031, "month": 1, "day": "1st"}, {"day": "must be a whole number"}, id="1st"
    ),
    pytest.param({"year": 9999, "month": 12, "day": 31}, {"year": "at most 9998"}, id="year-9999"),
    pytest.param(
        {"year": 2031, "month": 13, "day": "x"},
        {"month": "at most 12", "day": "must be a whole number"},
        id="two-wrong",
    ),
]


@pytest.mark.parametrize(
    ("route", "query", "fields"),
    [
        *(
            pytest.param("month-availability", *case.values, id=f"month-{case.id}")
            for case in MONTH_CASES
        ),
        *(
            pytest.param("day-availability", *case.values, id=f"day-{case.id}")
            for case in DAY_CASES
        ),
    ],
)
def test_bad_input_is_refused_naming_its_fields(client, api, route, query, fields):
    provider, customer = api.provider(), api.person()
    refused = client.get(
        f"/providers/{provider.id}/{route}", query_string=query, headers=customer.headers
    )
    assert refused.status_code == 400
    assert refused.json == {"error": VALIDATION_FAILS, "fields": fields}


def test_a_leap_day_is_a_day(client, api, now):
    provider, customer = api.provider(), api.person()
    assert day_of(client, customer, provider.id, date(2032, 2, 29)).status_code == 200


def test_bad_input_is_refused_before_the_provider_is_looked_for(client, api):
    customer = api.person()
    refused = client.get(
        "/providers/987654/month-availability?year=2031&month=13", headers=customer.headers
    )
    assert refused.status_code == 400
    assert refused.json == {"error": VALIDATION_FAILS, "fields": {"month": "at most 12"}}


# ---- the token -----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["month", "day"])
def test_no_token_is_refused(client, api, route):
    provider = api.provider()
    refused = client.get(ROUTES[route](provider.id))
    assert refused.status_code == 401
    assert refused.json == {"error": "Token not provided"}


REVOKED_CASES = {
    "month": "/providers/{}/month-availability?year=2031&month=1",
    "day": "/providers/{}/day-availability?year=2031&month=1&day=22",
    "bad-month": "/providers/{}/month-availability?year=2031&month=13",
    "bad-day": "/providers/{}/day-availability?year=2031&month=2&day=30",
    "unknown-provider": "/providers/987654/month-availability?year=2031&month=1",
}


@pytest.mark.parametrize("path", REVOKED_CASES.values(), ids=list(REVOKED_CASES))
def test_a_revoked_token_is_refused_before_anything_else(app, client, api, path):
    provider, customer = api.provider(), api.person()
    with app.app_context():
        db.session.execute(
            update(User).where(User.id == customer.id).values(token_version=User.token_version + 1)
        )
        db.session.commit()
    refused = client.get(path.format(provider.id), headers=customer.headers)
    assert refused.status_code == 401
    assert refused.json == {"error": "Token invalid"}


# ---- queries ---------------------------------------------------------------------------------


def test_a_month_takes_one_statement_however_many_bookings(app, client, api, now, count_queries):
    provider, customer = api.provider(), api.person()
    counts = []
    for day in (TODAY + timedelta(days=1), TODAY + timedelta(days=2), TODAY + timedelta(days=5)):
        book_day(api, customer, provider, day, app)
        with count_queries() as counter:
            answer = month_of(client, customer, provider.id, 2031, 1)
        assert answer.status_code == 200
        counts.append(counter.count)
    assert free_days(answer) == [20, 23, 24, *span(26, 31)]
    assert counts == [1, 1, 1], counts


def test_a_day_takes_one_statement(client, api, now, count_queries):
    provider, customer = api.provider(), api.person()
    with count_queries() as counter:
        assert day_of(client, customer, provider.id, TODAY).status_code == 200
    assert counter.count == 1
