"""A refused body or query names its wrong fields: `{"error": ..., "fields": {...}}`.

The error text stays what the contract gives (the clients read only the status); beside
it, each field the client got wrong, spelled as the client sent it, with a short message
of ours that never repeats what was sent.
"""

import jsonschema_rs
import pytest

VALIDATION_FAILS = "Validation fails"
DATE_FORMS = "must be an ISO 8601 date-time or milliseconds since the epoch"

SIGN_UP = {"name": "Ann", "email": "ann@barber.example.com", "password": "secret123"}
RESET = {"token": "abc", "password": "secret123", "password_confirmation": "secret123"}

CASES = [
    # ---- sign up
    pytest.param(
        "POST",
        "/users",
        {},
        {"name": "required", "email": "required", "password": "required"},
        id="sign-up-empty",
    ),
    pytest.param(
        "POST",
        "/users",
        {"name": "", "email": "ann", "password": "12345", "provider": "maybe"},
        {
            "name": "must not be empty",
            "email": "not a valid e-mail address",
            "password": "at least 6 characters",
            "provider": "must be true or false",
        },
        id="sign-up-four-wrong",
    ),
    pytest.param(
        "POST",
        "/users",
        {"name": "x" * 256, "email": 42, "password": "A" * 73},
        {
            "name": "at most 255 characters",
            "email": "must be a string",
            "password": "at most 72 characters",
        },
        id="sign-up-too-long-and-wrong-type",
    ),
    pytest.param(
        "POST",
        "/users",
        {"name": "Ann\x1b[31m", "email": "a" * 310 + "@example.com", "password": "ã" * 37},
        {
            "name": "control characters are not allowed",
            "email": "at most 320 characters",
            "password": "at most 72 bytes in UTF-8",
        },
        id="sign-up-our-own-checks",
    ),
    pytest.param(
        "POST",
        "/users",
        {**SIGN_UP, "name": None, "provider": [True]},
        {"name": "must be a string", "provider": "must be true or false"},
        id="sign-up-null-and-list",
    ),
    # ---- sign in
    pytest.param(
        "POST",
        "/sessions",
        {},
        {"email": "required", "password": "required"},
        id="sign-in-empty",
    ),
    pytest.param(
        "POST",
        "/sessions",
        {"email": "ann@", "password": ""},
        {"email": "not a valid e-mail address", "password": "must not be empty"},
        id="sign-in-bad-email-empty-password",
    ),
    pytest.param(
        "POST",
        "/sessions",
        {"email": None, "password": 123456},
        {"email": "must be a string", "password": "must be a string"},
        id="sign-in-wrong-types",
    ),
    # ---- profile
    pytest.param(
        "PUT",
        "/users",
        {"name": 5, "email": "nope", "avatar_id": "abc"},
        {
            "name": "must be a string",
            "email": "not a valid e-mail address",
            "avatar_id": "must be a whole number",
        },
        id="profile-three-wrong",
    ),
    pytest.param("PUT", "/users", {"avatar_id": 0}, {"avatar_id": "at least 1"}, id="avatar-0"),
    pytest.param(
        "PUT", "/users", {"avatar_id": 2**31}, {"avatar_id": "at most 2147483647"}, id="avatar-big"
    ),
    pytest.param(
        "PUT",
        "/users",
        {"avatar_id": 1.5},
        {"avatar_id": "must be a whole number"},
        id="avatar-1.5",
    ),
    pytest.param(
        "PUT",
        "/users",
        {"password": "newpass1", "confirmPassword": "newpass1"},
        {"oldPassword": "required when password is given"},
        id="profile-no-old-password",
    ),
    pytest.param(
        "PUT",
        "/users",
        {"oldPassword": "secret123"},
        {"password": "required when oldPassword is given"},
        id="profile-old-password-alone",
    ),
    pytest.param(
        "PUT",
        "/users",
        {"oldPassword": "secret123", "password": "newpass1"},
        {"confirmPassword": "required when password is given"},
        id="profile-no-confirmation",
    ),
    pytest.param(
        "PUT",
        "/users",
        {"oldPassword": "secret123", "password": "newpass1", "confirmPassword": "newpass2"},
        {"confirmPassword": "must equal password"},
        id="profile-confirmation-mismatch",
    ),
    pytest.param(
        "PUT",
        "/users",
        {"oldPassword": "short", "password": "tiny", "confirmPassword": "tiny"},
        {"oldPassword": "at least 6 characters", "password": "at least 6 characters"},
        id="profile-two-short-passwords",
    ),
    # ---- booking
    pytest.param(
        "POST",
        "/appointments",
        {},
        {"provider_id": "required", "date": "required"},
        id="booking-empty",
    ),
    pytest.param(
        "POST",
        "/appointments",
        {"provider_id": "abc", "date": "tomorrow"},
        {"provider_id": "must be a whole number", "date": DATE_FORMS},
        id="booking-both-wrong",
    ),
    pytest.param(
        "POST",
        "/appointments",
        {"provider_id": 0, "date": "9999-12-31T10:00:00"},
        {"provider_id": "at least 1", "date": "out of range"},
        id="booking-out-of-range",
    ),
    # ---- password reset
    pytest.param(
        "POST",
        "/password/reset",
        {},
        {"token": "required", "password": "required", "password_confirmation": "required"},
        id="reset-empty",
    ),
    pytest.param(
        "POST",
        "/password/reset",
        {"token": "", "password": "12345", "password_confirmation": 5},
        {
            "token": "must not be empty",
            "password": "at least 6 characters",
            "password_confirmation": "must be a string",
        },
        id="reset-three-wrong",
    ),
    pytest.param(
        "POST",
        "/password/reset",
        {**RESET, "password_confirmation": "secret124"},
        {"password_confirmation": "must equal password"},
        id="reset-mismatch",
    ),
    pytest.param(
        "POST",
        "/password/forgot",
        {"email": "someone"},
        {"email": "not a valid e-mail address"},
        id="forgot-bad-email",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "fields"), CASES)
def test_each_wrong_field_is_named_with_its_message(client, api, method, path, body, fields):
    person = api.person()
    refused = client.open(path, method=method, json=body, headers=person.headers)
    assert refused.status_code == 400
    assert refused.json == {"error": VALIDATION_FAILS, "fields": fields}


@pytest.mark.parametrize(
    ("page", "message"),
    [("0", "at least 1"), ("abc", "must be a whole number"), ("10000000", "at most 1000000")],
)
def test_a_wrong_query_field_is_named_too(client, api, page, message):
    person = api.person()
    refused = client.get(f"/appointments?page={page}", headers=person.headers)
    assert refused.status_code == 400
    assert refused.json == {"error": VALIDATION_FAILS, "fields": {"page": message}}


MARK = "Zq9marker"
ECHO_BAIT = [
    pytest.param(
        "POST",
        "/users",
        {"name": f"{MARK}\x07", "email": f"{MARK}@@", "password": MARK[:5], "provider": MARK},
        id="sign-up",
    ),
    pytest.param("POST", "/sessions", {"email": f"<{MARK}", "password": 1}, id="sign-in"),
    pytest.param(
        "PUT",
        "/users",
        {"email": f"{MARK}@", "avatar_id": MARK, "oldPassword": MARK + "1"},
        id="profile",
    ),
    pytest.param("POST", "/appointments", {"provider_id": MARK, "date": MARK}, id="booking"),
    pytest.param(
        "POST",
        "/password/reset",
        {"token": MARK, "password": MARK, "password_confirmation": MARK + "x"},
        id="reset",
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), ECHO_BAIT)
def test_no_answer_repeats_what_was_sent(client, api, method, path, body):
    person = api.person()
    refused = client.open(path, method=method, json=body, headers=person.headers)
    assert refused.status_code == 400
    assert refused.json["error"] == VALIDATION_FAILS
    assert refused.json["fields"], refused.json
    assert MARK.lower() not in refused.get_data(as_text=True).lower()


def test_a_refusal_matches_the_documented_error_answer(client):
    document = client.get("/openapi.json").json
    schema = document["paths"]["/users"]["post"]["responses"]["400"]["content"]["application/json"][
        "schema"
    ]
    assert schema["properties"]["fields"]["additionalProperties"] == {"type": "string"}
    refused = client.post("/users", json={"email": "ann"})
    assert refused.json["fields"]
    errors = [
        error.message for error in jsonschema_rs.validator_for(schema).iter_errors(refused.json)
    ]
    assert errors == []


def test_a_service_refusal_keeps_the_error_alone(client, api):
    person = api.person()
    taken = client.post("/users", json={**SIGN_UP, "email": person.email})
    assert (taken.status_code, taken.json) == (400, {"error": "User already exists."})
