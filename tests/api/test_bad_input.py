"""Hostile and broken input on every JSON route: a 4xx with `{"error": "..."}` (and, for
refused fields, the `fields` to blame), and no harm.

Malformed JSON, the wrong JSON type, wrong field types, huge bodies, ids that are no ids,
dates outside what a calendar holds, files that are not images, bytes that are not
UTF-8. Each answer must be the exact status and error text, as JSON, never a 5xx, an HTML
page or a traceback; and after each one the customer it was sent as can still sign in and
still has their appointment.
"""

import io
import struct
import zlib
from dataclasses import dataclass

import pytest
from PIL import Image

from tests.people import Person

VALIDATION_FAILS = "Validation fails"
INVALID_DATE = "Invalid date"
NOT_AN_IMAGE = "File must be an image (JPEG, PNG, GIF or WebP)"
TOO_LARGE = "Payload too large"
SEVEN_MB = 7 * 1024 * 1024

JSON_ROUTES = [
    ("POST", "/users"),
    ("POST", "/sessions"),
    ("PUT", "/users"),
    ("POST", "/appointments"),
]


@dataclass
class Victim:
    customer: Person
    provider: Person
    appointment_id: int


@pytest.fixture
def victim(api, slot):
    """A customer with one appointment; the bad requests are sent as them."""
    provider = api.provider("Barber")
    customer = api.person("Customer")
    booked = api.book(customer, provider, slot(days=2, hour=10))
    assert booked.status_code == 200, booked.json
    return Victim(customer, provider, booked.json["id"])


def assert_refused(response, status, error):
    """The exact status and error text, as JSON, with nothing of a crash in it; refused
    fields, if any, are named beside it."""
    body = response.get_data()
    assert b"Traceback" not in body
    assert b"<html" not in body.lower()
    assert (response.status_code, response.content_type, response.json["error"]) == (
        status,
        "application/json",
        error,
    )
    assert set(response.json) <= {"error", "fields"}, response.json


def assert_nothing_lost(client, victim):
    """The customer still signs in as before and still has their appointment."""
    customer = victim.customer
    signed = client.post("/sessions", json={"email": customer.email, "password": customer.password})
    assert signed.status_code == 200, signed.json
    user = signed.json["user"]
    assert (user["id"], user["name"], user["email"]) == (customer.id, customer.name, customer.email)
    listed = client.get("/appointments", headers=customer.headers)
    assert listed.status_code == 200
    assert [row["id"] for row in listed.json] == [victim.appointment_id]


def send(client, person, method, path, **kwargs):
    return client.open(path, method=method, headers=person.headers, **kwargs)


# ---- bodies that are not a JSON object ---------------------------------------------

NOT_AN_OBJECT = {
    "malformed": b'{"email": "ann@example.com", ',
    "trailing garbage": b'{"email": "ann@example.com"} and more',
    "single quotes": b"{'email': 'ann@example.com'}",
    "an array": b'[{"email": "ann@example.com", "password": "secret123"}]',
    "a string": b'"ann@example.com"',
    "a number": b"42",
    "null": b"null",
    "true": b"true",
    "not UTF-8": b'{"name": "\xff\xfe\xfa"}',
    "only invalid bytes": b"\xff\xfe\x00\x81",
    "empty": b"",
    # Deep, yet within the 64 KB a JSON body may take.
    "deeply nested array": b"[" * 60_000,
    "deeply nested object": b'{"a":' * 12_000,
}


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES, ids=lambda value: value)
@pytest.mark.parametrize("body", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
def test_a_body_that_is_not_a_json_object(client, victim, method, path, body):
    response = send(
        client, victim.customer, method, path, data=body, content_type="application/json"
    )
    assert_refused(response, 400, VALIDATION_FAILS)
    assert "fields" not in response.json  # no field to blame
    assert_nothing_lost(client, victim)


# ---- fields of the wrong type --------------------------------------------------------

SIGN_UP = {"name": "Ann", "email": "ann@example.com", "password": "secret123"}
SIGN_IN = {"email": "ann@example.com", "password": "secret123"}
BOOKING = {"provider_id": 1, "date": "2100-07-23T10:00:00-03:00"}

WRONG_TYPES = [
    ("POST", "/users", {**SIGN_UP, "name": 123}),
    ("POST", "/users", {**SIGN_UP, "name": None}),
    ("POST", "/users", {**SIGN_UP, "name": ["Ann"]}),
    ("POST", "/users", {**SIGN_UP, "email": 123}),
    ("POST", "/users", {**SIGN_UP, "email": {"address": "ann@example.com"}}),
    ("POST", "/users", {**SIGN_UP, "password": 12345678}),
    ("POST", "/users", {**SIGN_UP, "password": None}),
    ("POST", "/users", {**SIGN_UP, "provider": "maybe"}),
    ("POST", "/users", {**SIGN_UP, "provider": [True]}),
    ("POST", "/users", {**SIGN_UP, "name": "x" * 60_000}),
    ("POST", "/sessions", {**SIGN_IN, "email": 42}),
    ("POST", "/sessions", {**SIGN_IN, "email": None}),
    ("POST", "/sessions", {**SIGN_IN, "password": 12345678}),
    ("POST", "/sessions", {**SIGN_IN, "password": None}),
    ("PUT", "/users", {"name": 5}),
    ("PUT", "/users", {"email": False}),
    ("PUT", "/users", {"avatar_id": "abc"}),
    ("PUT", "/users", {"avatar_id": 1.5}),
    ("PUT", "/users", {"avatar_id": [1]}),
    ("PUT", "/users", {"avatar_id": 0}),
    ("PUT", "/users", {"avatar_id": -1}),
    ("PUT", "/users", {"avatar_id": 2**31}),
    ("PUT", "/users", {"avatar_id": 2**63}),
    ("PUT", "/users", {"avatar_id": 10**30}),
    (
        "PUT",
        "/users",
        {"oldPassword": 12345678, "password": "newpass1", "confirmPassword": "newpass1"},
    ),
    (
        "PUT",
        "/users",
        {"oldPassword": "secret123", "password": 12345678, "confirmPassword": 12345678},
    ),
    ("POST", "/appointments", {**BOOKING, "provider_id": "abc"}),
    ("POST", "/appointments", {**BOOKING, "provider_id": None}),
    ("POST", "/appointments", {**BOOKING, "provider_id": 1.5}),
    ("POST", "/appointments", {**BOOKING, "provider_id": {"id": 1}}),
    ("POST", "/appointments", {**BOOKING, "provider_id": 0}),
    ("POST", "/appointments", {**BOOKING, "provider_id": -1}),
    ("POST", "/appointments", {**BOOKING, "provider_id": 2**31}),
    ("POST", "/appointments", {**BOOKING, "provider_id": 2**63}),
    ("POST", "/appointments", {**BOOKING, "provider_id": 10**30}),
    ("POST", "/appointments", {**BOOKING, "date": 1563879600000.5}),
    ("POST", "/appointments", {**BOOKING, "date": True}),
    ("POST", "/appointments", {**BOOKING, "date": None}),
    ("POST", "/appointments", {**BOOKING, "date": ["2100-07-23T10:00:00"]}),
    ("POST", "/appointments", {**BOOKING, "date": "1563879600000.5"}),
    ("POST", "/appointments", {**BOOKING, "date": str(10**20)}),
    ("POST", "/appointments", {**BOOKING, "date": "2019-13-45T10:00:00"}),
    ("POST", "/appointments", {**BOOKING, "date": "2019-13-45"}),
    ("POST", "/appointments", {**BOOKING, "date": "9999-12-31T10:00:00"}),
    ("POST", "/appointments", {**BOOKING, "date": "0001-01-01T10:00:00"}),
    ("POST", "/appointments", {**BOOKING, "date": "10000-01-01T10:00:00"}),
    ("POST", "/appointments", {**BOOKING, "date": "tomorrow at ten"}),
    ("POST", "/appointments", {**BOOKING, "date": ""}),
    ("POST", "/appointments", {**BOOKING, "date": "2100-07-23T10:00:00" + "0" * 10_000}),
]


BASES = {
    ("POST", "/users"): SIGN_UP,
    ("POST", "/sessions"): SIGN_IN,
    ("POST", "/appointments"): BOOKING,
}


def wrong_type_id(method, path, body):
    """Name a case by the fields it changes from the route's valid body."""
    base = BASES.get((method, path), {})
    changed = ", ".join(f"{k}={v!r:.24}" for k, v in body.items() if base.get(k, ...) != v)
    return f"{method} {path} {changed}"


@pytest.mark.parametrize(
    ("method", "path", "body"), WRONG_TYPES, ids=[wrong_type_id(*case) for case in WRONG_TYPES]
)
def test_a_field_of_the_wrong_type_or_range(client, victim, method, path, body):
    response = send(client, victim.customer, method, path, json=body)
    assert_refused(response, 400, VALIDATION_FAILS)
    assert_nothing_lost(client, victim)


def test_unknown_ids_in_a_body(client, victim):
    booking = {"provider_id": 2**31 - 1, "date": "2100-07-23T10:00:00-03:00"}
    response = send(client, victim.customer, "POST", "/appointments", json=booking)
    assert_refused(response, 401, "You can only create appointments with providers")
    response = send(client, victim.customer, "PUT", "/users", json={"avatar_id": 2**31 - 1})
    assert_refused(response, 400, "Avatar file not found")
    assert_nothing_lost(client, victim)


# ---- bodies over the size limit --------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES, ids=lambda value: value)
def test_a_huge_json_body(client, victim, method, path):
    body = b'{"name": "' + b"a" * SEVEN_MB + b'"}'
    response = send(
        client, victim.customer, method, path, data=body, content_type="application/json"
    )
    assert_refused(response, 413, TOO_LARGE)
    assert_nothing_lost(client, victim)


def test_a_huge_upload(client, victim):
    upload = {"file": (io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\0" * SEVEN_MB), "big.png")}
    response = send(client, victim.customer, "POST", "/files", data=upload)
    assert_refused(response, 413, TOO_LARGE)
    assert_nothing_lost(client, victim)


# ---- ids in paths ----------------------------------------------------------------------

ID_ROUTES = [
    ("GET", "/appointments/{}", "Appointment not found"),
    ("DELETE", "/appointments/{}", "Appointment not found"),
    ("PUT", "/notifications/{}", "Notification not found"),
    ("GET", "/providers/{}/available?date=1563879600000", "Provider not found"),
]
BAD_IDS = {
    "unknown": "999999",
    "largest": str(2**31 - 1),
    "2**31": str(2**31),
    "2**63": str(2**63),
    "10**30": str(10**30),
    "zero": "0",
    "negative": "-1",
    "non-numeric": "abc",
    "decimal": "1.5",
    "exponent": "1e3",
    "hex": "0x1",
    "space": "%201",
    "NUL": "%00",
    "superscript two": "%C2%B2",
    "arabic-indic one": "%D9%A1",
    "fullwidth one": "%EF%BC%91",
    "not UTF-8": "%FF",
}


@pytest.mark.parametrize(
    ("method", "template", "error"), ID_ROUTES, ids=[r[0] + " " + r[1] for r in ID_ROUTES]
)
@pytest.mark.parametrize("raw_id", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_an_id_that_names_no_row(client, victim, method, template, error, raw_id):
    response = send(client, victim.customer, method, template.format(raw_id))
    assert_refused(response, 404, error)
    assert_nothing_lost(client, victim)


# ---- dates in queries ------------------------------------------------------------------

AVAILABLE_DATES = {
    "missing": None,
    "empty": "",
    "text": "tomorrow",
    "hour 25": "2019-07-23T25:00:00",
    "short digits, read as ISO": "-1",
    "decimal": "1563879600000.5",
    "10**20 ms": str(10**20),
    "year 10000": "253402300800000",
    "first millisecond of year 1": "-62135596800000",
    "before year 1": "-62135596800001",
    "far negative": str(-(10**15)),
    "not UTF-8": "%FF",
}
SCHEDULE_DATES = {
    "missing": None,
    "empty": "",
    "text": "tomorrow",
    "month 13 day 45": "2019-13-45",
    "month 13 day 45 with a time": "2019-13-45T10:00:00",
    "hour 25": "2019-07-23T25:00:00",
    "end of 9999": "9999-12-31T23:59:59",
    "end of 9999 west of UTC": "9999-12-31T20:00:00-12:00",
    "start of year 1 east of UTC": "0001-01-01T00:00:00+14:00",
    "year 10000": "10000-01-01T00:00:00",
    "10**20 ms": str(10**20),
    "far negative ms": str(-(10**15)),
    "too long": "2019-07-23T10:00:00" + "0" * 100,
    "not UTF-8": "%FF",
}


def with_date(path, date):
    return path if date is None else f"{path}?date={date}"


@pytest.mark.parametrize("date", AVAILABLE_DATES.values(), ids=AVAILABLE_DATES.keys())
def test_a_day_that_is_no_day_for_availability(client, victim, date):
    path = with_date(f"/providers/{victim.provider.id}/available", date)
    assert_refused(send(client, victim.customer, "GET", path), 400, INVALID_DATE)
    assert_nothing_lost(client, victim)


def test_negative_milliseconds_are_a_day_in_1969_with_every_slot_past(client, victim):
    # Nine characters: a shorter digit string is read as an ISO 8601 date.
    path = f"/providers/{victim.provider.id}/available?date=-10000000"
    response = send(client, victim.customer, "GET", path)
    assert response.status_code == 200
    assert [slot["value"][:10] for slot in response.json] == ["1969-12-31"] * 12
    assert not any(slot["available"] for slot in response.json)


@pytest.mark.parametrize("route", ["/schedule", "/schedules"])
@pytest.mark.parametrize("date", SCHEDULE_DATES.values(), ids=SCHEDULE_DATES.keys())
def test_a_day_that_is_no_day_for_the_schedule(client, victim, route, date):
    response = send(client, victim.provider, "GET", with_date(route, date))
    assert_refused(response, 400, INVALID_DATE)
    assert_nothing_lost(client, victim)


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "", str(10**30), "%FF"])
def test_a_page_that_is_no_page(client, victim, page):
    response = send(client, victim.customer, "GET", f"/appointments?page={page}")
    assert_refused(response, 400, VALIDATION_FAILS)
    assert_nothing_lost(client, victim)


# ---- uploads that are not images -------------------------------------------------------


def bmp_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "navy").save(buffer, "BMP")
    return buffer.getvalue()


def png_header(width, height):
    """A PNG signature and header claiming a size, with no pixels behind it."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


NOT_IMAGES = {
    "text named .png": (b"hello, I am not a picture", "avatar.png"),
    "HTML": (b"<html><script>alert(1)</script></html>", "avatar.html"),
    "SVG": (b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>', "avatar.svg"),
    "PDF": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "avatar.pdf"),
    "BMP": (bmp_bytes(), "avatar.bmp"),
    "truncated PNG": (png_header(16, 16)[:20], "avatar.png"),
    "PNG header without pixels": (png_header(16, 16), "avatar.png"),
    "non-UTF-8 bytes": (b"\xff\xfe\xfd\xfc" * 64, "avatar.jpg"),
}


@pytest.mark.parametrize(("data", "filename"), NOT_IMAGES.values(), ids=NOT_IMAGES.keys())
def test_an_upload_that_is_not_an_image(client, victim, data, filename):
    upload = {"file": (io.BytesIO(data), filename)}
    response = send(client, victim.customer, "POST", "/files", data=upload)
    assert_refused(response, 400, NOT_AN_IMAGE)
    assert_nothing_lost(client, victim)


def test_an_upload_declaring_a_billion_pixels(client, victim):
    """Refused from its header: Pillow would not even open it (a decompression bomb)."""
    upload = {"file": (io.BytesIO(png_header(40_000, 40_000)), "bomb.png")}
    response = send(client, victim.customer, "POST", "/files", data=upload)
    assert_refused(response, 400, "Image too large")
    assert_nothing_lost(client, victim)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"data": {"file": (io.BytesIO(b""), "empty.png")}}, "File is empty"),
        (
            {"data": {"avatar": (io.BytesIO(b"x"), "a.png")}},
            "File not provided (multipart field 'file')",
        ),
        ({"json": {"file": "aGVsbG8="}}, "File not provided (multipart field 'file')"),
        (
            {"data": b"\xff\xfe", "content_type": "multipart/form-data; boundary=x"},
            "File not provided (multipart field 'file')",
        ),
    ],
    ids=["empty file", "wrong field", "JSON instead", "broken multipart"],
)
def test_an_upload_without_a_file(client, victim, kwargs, error):
    response = send(client, victim.customer, "POST", "/files", **kwargs)
    assert_refused(response, 400, error)
    assert_nothing_lost(client, victim)


# ---- routes and methods that do not exist ----------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("PATCH", "/users", 405, "Method not allowed"),
        ("DELETE", "/users", 405, "Method not allowed"),
        ("GET", "/sessions", 405, "Method not allowed"),
        ("POST", "/providers", 405, "Method not allowed"),
        ("PUT", "/appointments", 405, "Method not allowed"),
        ("GET", "/nothing-here", 404, "Not found"),
        ("GET", "/appointments/1/extra", 404, "Not found"),
        ("GET", "/%FF", 404, "Not found"),
    ],
)
def test_a_route_or_method_that_does_not_exist(client, victim, method, path, status, error):
    response = send(client, victim.customer, method, path, json={})
    assert_refused(response, status, error)
    assert_nothing_lost(client, victim)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"name": "Ana\x00", "email": "nul@barber.example.com", "password": "secret123"},
            {"name": "control characters are not allowed"},
        ),
        (
            {"name": "Ana", "email": "nul2@barber.example.com", "password": "secret\x00123"},
            {"password": "must not contain NUL characters"},
        ),
        (
            {
                "name": "Ana",
                "email": "nul3@barber.example.com",
                "password": "secret123",
                "extra\x00key": 1,
            },
            None,  # a key the model ignores: no field to blame
        ),
    ],
)
def test_nul_characters_are_refused_not_a_500(client, body, fields):
    answer = client.post("/users", json=body)
    assert answer.status_code == 400
    assert answer.json == {"error": "Validation fails", **({"fields": fields} if fields else {})}


def test_an_upload_name_with_control_characters_is_stored_cleaned(client, api):
    person = api.person("Uploader")
    data = io.BytesIO()
    Image.new("RGB", (2, 2)).save(data, "PNG")
    data.seek(0)
    answer = client.post(
        "/files",
        data={"file": (data, "a\x00b\x07.png")},
        headers=person.headers,
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200
    assert answer.json["name"] == "ab.png"
