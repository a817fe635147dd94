"""Signing up (`POST /users`) and changing one's profile (`PUT /users`)."""

import io

import pytest
from PIL import Image

VALIDATION_FAILS = "Validation fails"
EMAIL_TAKEN = {"error": "User already exists."}
WRONG_PASSWORD = {"error": "Password does not match"}


def sign_in(client, email, password):
    return client.post("/sessions", json={"email": email, "password": password})


def upload_avatar(client, person):
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "navy").save(image, "PNG")
    image.seek(0)
    uploaded = client.post("/files", data={"file": (image, "me.png")}, headers=person.headers)
    assert uploaded.status_code == 200, uploaded.json
    return uploaded.json


# ---- POST /users ----------------------------------------------------------------------


def test_sign_up_answers_with_the_new_user(client):
    body = {"name": "Ana Souza", "email": "ana@barber.example.com", "password": "secret123"}
    created = client.post("/users", json=body)
    assert created.status_code == 200
    assert created.json == {
        "id": created.json["id"],
        "name": "Ana Souza",
        "email": "ana@barber.example.com",
        "provider": False,
    }
    assert isinstance(created.json["id"], int)
    assert sign_in(client, "ana@barber.example.com", "secret123").status_code == 200


def test_sign_up_as_provider_as_the_web_client_does(client):
    body = {"name": "Bia", "email": "bia@barber.example.com", "password": "secret123"}
    created = client.post("/users", json={**body, "provider": True})
    assert created.status_code == 200
    assert created.json["provider"] is True
    signed = sign_in(client, body["email"], body["password"]).json
    listed = client.get("/providers", headers={"Authorization": f"Bearer {signed['token']}"})
    assert [p["id"] for p in listed.json] == [created.json["id"]]


VALID_SIGN_UP = {"name": "Caio", "email": "caio@barber.example.com", "password": "secret123"}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({k: v for k, v in VALID_SIGN_UP.items() if k != "name"}, id="no-name"),
        pytest.param({**VALID_SIGN_UP, "name": ""}, id="empty-name"),
        pytest.param({**VALID_SIGN_UP, "name": "   "}, id="blank-name"),
        pytest.param({**VALID_SIGN_UP, "name": None}, id="null-name"),
        pytest.param({**VALID_SIGN_UP, "name": 42}, id="number-name"),
        pytest.param({k: v for k, v in VALID_SIGN_UP.items() if k != "email"}, id="no-email"),
        pytest.param({**VALID_SIGN_UP, "email": "caio"}, id="email-without-at"),
        pytest.param({**VALID_SIGN_UP, "email": "caio@"}, id="email-without-domain"),
        pytest.param({**VALID_SIGN_UP, "email": ""}, id="empty-email"),
        pytest.param({k: v for k, v in VALID_SIGN_UP.items() if k != "password"}, id="no-pw"),
        pytest.param({**VALID_SIGN_UP, "password": "12345"}, id="five-char-password"),
        pytest.param({**VALID_SIGN_UP, "password": ""}, id="empty-password"),
        pytest.param({**VALID_SIGN_UP, "provider": "maybe"}, id="provider-not-boolean"),
        pytest.param([VALID_SIGN_UP], id="not-an-object"),
    ],
)
def test_sign_up_refuses_an_invalid_body(client, body):
    refused = client.post("/users", json=body)
    assert refused.status_code == 400
    assert refused.json["error"] == VALIDATION_FAILS
    assert sign_in(client, VALID_SIGN_UP["email"], VALID_SIGN_UP["password"]).status_code == 401


def test_sign_up_refuses_a_body_that_is_not_json(client):
    refused = client.post("/users", data="name=Caio", content_type="application/json")
    assert refused.status_code == 400
    assert refused.json["error"] == VALIDATION_FAILS


def test_six_characters_are_a_long_enough_password(client):
    created = client.post("/users", json={**VALID_SIGN_UP, "password": "123456"})
    assert created.status_code == 200
    assert sign_in(client, VALID_SIGN_UP["email"], "123456").status_code == 200


@pytest.mark.parametrize(
    "second_email",
    ["dora@barber.example.com", "DORA@barber.example.com", "Dora@Barber.Example.COM"],
)
def test_sign_up_refuses_an_email_already_taken_whatever_its_case(client, second_email):
    first = {"name": "Dora", "email": "dora@barber.example.com", "password": "secret123"}
    assert client.post("/users", json=first).status_code == 200
    again = client.post("/users", json={**first, "email": second_email, "password": "other123"})
    assert again.status_code == 400
    assert again.json == EMAIL_TAKEN
    assert sign_in(client, first["email"], "other123").json == WRONG_PASSWORD


def test_sign_up_stores_the_email_in_lower_case(client):
    created = client.post("/users", json={**VALID_SIGN_UP, "email": "Caio@Barber.Example.com"})
    assert created.status_code == 200
    assert created.json["email"] == "caio@barber.example.com"
    assert sign_in(client, "CAIO@BARBER.EXAMPLE.COM", "secret123").status_code == 200


# ---- PUT /users -----------------------------------------------------------------------


def test_profile_changes_name_and_email(client, api):
    person = api.person("Old Name")
    changed = client.put(
        "/users",
        json={"name": "New Name", "email": "new@barber.example.com"},
        headers=person.headers,
    )
    assert changed.status_code == 200
    assert changed.json == {
        "id": person.id,
        "name": "New Name",
        "email": "new@barber.example.com",
        "avatar": None,
    }
    signed = sign_in(client, "new@barber.example.com", person.password)
    assert signed.status_code == 200
    assert signed.json["user"]["name"] == "New Name"
    assert sign_in(client, person.email, person.password).json == {"error": "User not found"}


def test_profile_with_an_empty_body_changes_nothing(client, api):
    person = api.person("Same")
    unchanged = client.put("/users", json={}, headers=person.headers)
    assert unchanged.status_code == 200
    assert unchanged.json == {
        "id": person.id,
        "name": "Same",
        "email": person.email,
        "avatar": None,
    }


def test_profile_may_keep_its_own_email(client, api):
    person = api.person()
    kept = client.put("/users", json={"email": person.email.upper()}, headers=person.headers)
    assert kept.status_code == 200
    assert kept.json["email"] == person.email


@pytest.mark.parametrize("as_text", [False, True], ids=["integer", "numeric-string"])
def test_profile_sets_the_avatar_from_an_uploaded_file(client, api, as_text):
    person = api.person()
    file = upload_avatar(client, person)
    avatar_id = str(file["id"]) if as_text else file["id"]
    changed = client.put("/users", json={"avatar_id": avatar_id}, headers=person.headers)
    assert changed.status_code == 200
    assert changed.json["avatar"] == {"url": file["url"], "id": file["id"], "path": file["path"]}
    signed = sign_in(client, person.email, person.password)
    assert signed.json["user"]["avatar"] == changed.json["avatar"]


def test_profile_clears_the_avatar_with_null(client, api):
    person = api.person()
    file = upload_avatar(client, person)
    client.put("/users", json={"avatar_id": file["id"]}, headers=person.headers)
    cleared = client.put("/users", json={"avatar_id": None}, headers=person.headers)
    assert cleared.status_code == 200
    assert cleared.json["avatar"] is None


def test_profile_refuses_an_unknown_avatar(client, api):
    person = api.person()
    refused = client.put("/users", json={"avatar_id": 987654}, headers=person.headers)
    assert refused.status_code == 400
    assert refused.json == {"error": "Avatar file not found"}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"avatar_id": "abc"}, id="avatar-not-numeric"),
        pytest.param({"avatar_id": 0}, id="avatar-zero"),
        pytest.param({"avatar_id": 1.5}, id="avatar-fraction"),
        pytest.param({"email": "not-an-email"}, id="bad-email"),
        pytest.param({"name": ""}, id="empty-name"),
        pytest.param({"password": "newpass1", "confirmPassword": "newpass1"}, id="no-old-pw"),
        pytest.param({"oldPassword": "secret123"}, id="old-password-alone"),
        pytest.param({"oldPassword": "secret123", "password": "newpass1"}, id="no-confirmation"),
        pytest.param(
            {"oldPassword": "secret123", "password": "newpass1", "confirmPassword": "newpass2"},
            id="confirmation-mismatch",
        ),
        pytest.param(
            {"oldPassword": "secret123", "password": "short", "confirmPassword": "short"},
            id="short-new-password",
        ),
        pytest.param(["name"], id="not-an-object"),
    ],
)
def test_profile_refuses_an_invalid_body(client, api, body):
    person = api.person("Unchanged", password="secret123")
    refused = client.put("/users", json=body, headers=person.headers)
    assert refused.status_code == 400
    assert refused.json["error"] == VALIDATION_FAILS
    signed = sign_in(client, person.email, "secret123")
    assert signed.status_code == 200
    assert signed.json["user"]["name"] == "Unchanged"
    assert signed.json["user"]["avatar"] is None


@pytest.mark.parametrize("case", [str.lower, str.upper], ids=["same-case", "other-case"])
def test_profile_refuses_an_email_another_user_has(client, api, case):
    person, other = api.person(), api.person()
    refused = client.put("/users", json={"email": case(other.email)}, headers=person.headers)
    assert refused.status_code == 400
    assert refused.json == EMAIL_TAKEN
    assert sign_in(client, person.email, person.password).status_code == 200


def test_profile_changes_the_password_given_the_old_one(client, api):
    person = api.person(password="secret123")
    body = {"oldPassword": "secret123", "password": "brandnew9", "confirmPassword": "brandnew9"}
    changed = client.put("/users", json=body, headers=person.headers)
    assert changed.status_code == 200
    assert changed.json == {
        "id": person.id,
        "name": person.name,
        "email": person.email,
        "avatar": None,
    }
    assert sign_in(client, person.email, "brandnew9").status_code == 200
    old = sign_in(client, person.email, "secret123")
    assert old.status_code == 401
    assert old.json == WRONG_PASSWORD


def test_profile_refuses_a_wrong_old_password(client, api):
    person = api.person(password="secret123")
    body = {"oldPassword": "notmine99", "password": "brandnew9", "confirmPassword": "brandnew9"}
    refused = client.put("/users", json=body, headers=person.headers)
    assert refused.status_code == 401
    assert refused.json == WRONG_PASSWORD
    assert sign_in(client, person.email, "secret123").status_code == 200
    assert sign_in(client, person.email, "brandnew9").status_code == 401


def test_a_refused_password_change_changes_nothing_else(client, api):
    person = api.person("Kept", password="secret123")
    body = {
        "name": "Changed",
        "oldPassword": "notmine99",
        "password": "brandnew9",
        "confirmPassword": "brandnew9",
    }
    assert client.put("/users", json=body, headers=person.headers).status_code == 401
    assert sign_in(client, person.email, "secret123").json["user"]["name"] == "Kept"


@pytest.mark.parametrize("provider", [True, "true", 1])
def test_profile_cannot_make_a_customer_a_provider(client, api, provider):
    customer = api.person(password="secret123")
    answered = client.put(
        "/users", json={"name": "Still Customer", "provider": provider}, headers=customer.headers
    )
    assert answered.status_code == 200
    assert "provider" not in answered.json
    signed = sign_in(client, customer.email, "secret123").json
    assert signed["user"]["provider"] is False
    assert signed["user"]["name"] == "Still Customer"
    assert client.get("/providers", headers=customer.headers).json == []


def test_profile_cannot_make_a_provider_a_customer(client, api):
    provider = api.provider()
    answered = client.put("/users", json={"provider": False}, headers=provider.headers)
    assert answered.status_code == 200
    listed = client.get("/providers", headers=provider.headers).json
    assert [p["id"] for p in listed] == [provider.id]
