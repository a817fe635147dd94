"""Every date parameter takes an ISO 8601 date or date-time, or milliseconds since the epoch.

`GET /providers/:id/available?date=`, `GET /schedule?date=` (and `/schedules`) and the
`date` of `POST /appointments` read the same spellings through one field type: the same
moment spelled any way gets the same answer. What is no date keeps each route's refusal
text, with the field named beside it, and a date past what the calendar holds is a 400,
never a 500.
"""

from datetime import UTC, timedelta

import pytest

INVALID_DATE = "Invalid date"
VALIDATION_FAILS = "Validation fails"
DATE_FORMS = "must be an ISO 8601 date-time or milliseconds since the epoch"
OUT_OF_RANGE = "out of range"


def millis(moment):
    return int(moment.timestamp()) * 1000


def utc_iso(moment):
    """The contract's date text for a whole second: `2019-07-23T11:00:00.000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# Each spelling of an aware shop-time moment that names its shop-local day.
DAY_SPELLINGS = {
    "iso-date": lambda moment: moment.date().isoformat(),
    "iso-basic-date": lambda moment: moment.strftime("%Y%m%d"),
    "iso-date-time-with-offset": lambda moment: moment.isoformat(),
    "iso-date-time-in-utc": lambda moment: utc_iso(moment),
    "iso-date-time-without-offset": lambda moment: moment.replace(tzinfo=None).isoformat(),
    "milliseconds": lambda moment: str(millis(moment)),
}
# Each spelling of an aware shop-time moment in a booking's body.
BOOKING_SPELLINGS = {
    "iso-date-time-with-offset": lambda moment: moment.isoformat(),
    "iso-date-time-in-utc": lambda moment: utc_iso(moment),
    "iso-date-time-without-offset": lambda moment: moment.replace(tzinfo=None).isoformat(),
    "milliseconds-integer": millis,
    "milliseconds-string": lambda moment: str(millis(moment)),
}
DAY_SPELLED = pytest.mark.parametrize("spell", DAY_SPELLINGS.values(), ids=DAY_SPELLINGS.keys())


def available(client, person, provider, date):
    query = {} if date is None else {"date": date}
    return client.get(
        f"/providers/{provider.id}/available", query_string=query, headers=person.headers
    )


def schedule(client, path, provider, date):
    query = {} if date is None else {"date": date}
    return client.get(path, query_string=query, headers=provider.headers)


def book(client, customer, provider, date):
    return client.post(
        "/appointments",
        json={"provider_id": provider.id, "date": date},
        headers=customer.headers,
    )


# ---- the same moment, spelled each way ------------------------------------------------


@DAY_SPELLED
def test_availability_reads_each_spelling_of_a_day(client, api, slot, spell):
    provider, customer = api.provider(), api.person()
    assert api.book(customer, provider, slot(days=2, hour=10)).status_code == 200
    noon = slot(days=2, hour=12)

    answer = available(client, customer, provider, spell(noon))

    assert answer.status_code == 200, answer.json
    assert answer.json == available(client, customer, provider, str(millis(noon))).json
    assert {entry["value"][:10] for entry in answer.json} == {noon.date().isoformat()}
    assert [entry["time"] for entry in answer.json if not entry["available"]] == ["10:00"]


@pytest.mark.parametrize("path", ["/schedule", "/schedules"])
@DAY_SPELLED
def test_the_schedule_reads_each_spelling_of_a_day(client, api, slot, path, spell):
    provider, customer = api.provider(), api.person()
    booked = api.book(customer, provider, slot(days=2, hour=10)).json
    assert api.book(customer, provider, slot(days=3, hour=10)).status_code == 200

    answer = schedule(client, path, provider, spell(slot(days=2, hour=12)))

    assert answer.status_code == 200, answer.json
    assert [row["id"] for row in answer.json] == [booked["id"]]


@pytest.mark.parametrize("spell", BOOKING_SPELLINGS.values(), ids=BOOKING_SPELLINGS.keys())
def test_booking_reads_each_spelling_of_a_moment(client, api, slot, spell):
    provider, customer = api.provider(), api.person()
    start = slot(days=2, hour=10)

    answer = book(client, customer, provider, spell(start + timedelta(minutes=25)))

    assert answer.status_code == 200, answer.json
    assert answer.json["date"] == utc_iso(start)


def test_a_booking_on_a_bare_date_asks_for_its_midnight(client, api, slot):
    provider, customer = api.provider(), api.person()
    answer = book(client, customer, provider, slot(days=2).date().isoformat())
    assert (answer.status_code, answer.json) == (
        400,
        {"error": "Appointment date is not available"},
    )


# ---- digits: a date up to eight characters, milliseconds beyond -----------------------


@pytest.mark.parametrize(
    ("date", "day"),
    [("20190723", "2019-07-23"), ("123456789", "1970-01-02"), ("-10000000", "1969-12-31")],
    ids=["eight-digits-are-a-date", "nine-digits-are-milliseconds", "negative-milliseconds"],
)
def test_digits_are_a_date_up_to_eight_characters_and_milliseconds_beyond(client, api, date, day):
    provider, customer = api.provider(), api.person()
    answer = available(client, customer, provider, date)
    assert answer.status_code == 200, answer.json
    assert {entry["value"][:10] for entry in answer.json} == {day}


# ---- what is no date ------------------------------------------------------------------

NO_DAYS = [
    pytest.param(None, "required", id="missing"),
    pytest.param("", DATE_FORMS, id="empty"),
    pytest.param("tomorrow", DATE_FORMS, id="word"),
    pytest.param("2019-13-45", DATE_FORMS, id="month-13"),
    pytest.param("2019-07-23T25:00:00", DATE_FORMS, id="hour-25"),
    pytest.param("2019", DATE_FORMS, id="a-year-is-not-milliseconds"),
    pytest.param("-1", DATE_FORMS, id="short-digits-read-as-iso"),
    pytest.param("1563879600000.5", DATE_FORMS, id="fraction-of-a-millisecond"),
    pytest.param("2019-07-23T10:00:00" + "0" * 50, DATE_FORMS, id="too-long"),
    pytest.param("10000-01-01T00:00:00", DATE_FORMS, id="year-10000"),
    pytest.param("9999-12-31T12:00:00", OUT_OF_RANGE, id="last-day-of-9999"),
    pytest.param("0001-01-01T12:00:00", OUT_OF_RANGE, id="first-day-of-year-1"),
    pytest.param("0001-01-02T00:00:00+14:00", OUT_OF_RANGE, id="year-1-east-of-utc"),
    pytest.param("253402214400000", OUT_OF_RANGE, id="ms-of-9999-12-31"),
    pytest.param("-62135596800001", OUT_OF_RANGE, id="ms-before-year-1"),
    pytest.param(str(10**20), OUT_OF_RANGE, id="ms-10-to-the-20"),
    pytest.param("9" * 400, DATE_FORMS, id="400-digits-past-the-length-limit"),
]


@pytest.mark.parametrize(("date", "message"), NO_DAYS)
def test_availability_refuses_what_is_no_day(client, api, date, message):
    provider, customer = api.provider(), api.person()
    refused = available(client, customer, provider, date)
    assert (refused.status_code, refused.json) == (
        400,
        {"error": INVALID_DATE, "fields": {"date": message}},
    )


@pytest.mark.parametrize("path", ["/schedule", "/schedules"])
@pytest.mark.parametrize(("date", "message"), NO_DAYS)
def test_the_schedule_refuses_what_is_no_day(client, api, path, date, message):
    provider = api.provider()
    refused = schedule(client, path, provider, date)
    assert (refused.status_code, refused.json) == (
        400,
        {"error": INVALID_DATE, "fields": {"date": message}},
    )


NO_MOMENTS = [
    *(param for param in NO_DAYS if param.values[0] is not None),
    pytest.param(None, DATE_FORMS, id="null"),
    pytest.param(True, DATE_FORMS, id="true"),
    pytest.param(1563879600000.5, DATE_FORMS, id="json-fraction"),
    pytest.param(["2100-07-23T10:00:00"], DATE_FORMS, id="list"),
    pytest.param(10**20, OUT_OF_RANGE, id="json-10-to-the-20"),
    pytest.param(-(10**20), OUT_OF_RANGE, id="json-minus-10-to-the-20"),
]


@pytest.mark.parametrize(("date", "message"), NO_MOMENTS)
def test_booking_refuses_what_is_no_moment(client, api, date, message):
    provider, customer = api.provider(), api.person()
    refused = book(client, customer, provider, date)
    assert (refused.status_code, refused.json) == (
        400,
        {"error": VALIDATION_FAILS, "fields": {"date": message}},
    )


def test_a_booking_without_a_date_names_it_required(client, api):
    customer = api.person()
    refused = client.post("/appointments", json={"provider_id": 1}, headers=customer.headers)
    assert refused.json == {"error": VALIDATION_FAILS, "fields": {"date": "required"}}


# ---- the document ---------------------------------------------------------------------


def date_schemas(document):
    """The schema of `date` on each route that takes one, by route."""
    paths = document["paths"]
    schemas = {
        path: next(p for p in paths[path]["get"]["parameters"] if p["name"] == "date")["schema"]
        for path in ("/providers/{provider_id}/available", "/schedule", "/schedules")
    }
    booking = paths["/appointments"]["post"]["requestBody"]["content"]["application/json"]
    name = booking["schema"]["$ref"].rsplit("/", 1)[1]
    schemas["/appointments"] = document["components"]["schemas"][name]["properties"]["date"]
    return schemas


def test_each_date_parameter_documents_both_spellings(client):
    document = client.get("/openapi.json").json
    for path, schema in date_schemas(document).items():
        forms = {(form["type"], form.get("format")) for form in schema["oneOf"]}
        assert {("string", "date-time"), ("integer", None)} <= forms, path
        assert "ISO 8601" in schema["description"], path
        assert "milliseconds since the epoch" in schema["description"], path
        assert "longer than 8 characters" in schema["description"], path
