"""Signing in (`POST /sessions`): the answer's shape, its errors and the JWT it hands out."""

import io
import time
from datetime import timedelta

import bcrypt
import jwt
import pytest
from PIL import Image
from sqlalchemy import update

from gobarber.extensions import db
from gobarber.models import User

SEVEN_DAYS = int(timedelta(days=7).total_seconds())


def sign_in(client, email, password):
    return client.post("/sessions", json={"email": email, "password": password})


def test_sign_in_answers_with_the_user_and_a_token(client, api):
    person = api.person("Ana", password="secret123")
    signed = sign_in(client, person.email, "secret123")
    assert signed.status_code == 200
    assert signed.json == {
        "user": {
            "id": person.id,
            "name": "Ana",
            "email": person.email,
            "provider": False,
            "avatar": None,
        },
        "token": signed.json["token"],
    }
    authorized = client.get(
        "/notifications", headers={"Authorization": f"Bearer {signed.json['token']}"}
    )
    assert authorized.status_code == 200


def test_sign_in_tells_a_provider_apart(client, api):
    provider = api.provider("Bia")
    signed = sign_in(client, provider.email, provider.password)
    assert signed.json["user"]["provider"] is True


def test_sign_in_shows_the_avatar(client, api):
    person = api.person()
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(image, "PNG")
    image.seek(0)
    file = client.post("/files", data={"file": (image, "me.png")}, headers=person.headers).json
    client.put("/users", json={"avatar_id": file["id"]}, headers=person.headers)
    signed = sign_in(client, person.email, person.password)
    assert signed.json["user"]["avatar"] == {
        "url": f"http://testserver/files/{file['path']}",
        "id": file["id"],
        "path": file["path"],
    }


def test_sign_in_ignores_the_case_of_the_email(client, api):
    person = api.person()
    assert sign_in(client, person.email.upper(), person.password).status_code == 200


def test_sign_in_with_an_unknown_email(client, api):
    api.person()
    refused = sign_in(client, "nobody@barber.example.com", "secret123")
    assert refused.status_code == 401
    assert refused.json == {"error": "User not found"}


@pytest.mark.parametrize("password", ["wrong-one", "secret12", "secret1234", "SECRET123"])
def test_sign_in_with_a_wrong_password(client, api, password):
    person = api.person(password="secret123")
    refused = sign_in(client, person.email, password)
    assert refused.status_code == 401
    assert refused.json == {"error": "Password does not match"}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"password": "secret123"}, id="no-email"),
        pytest.param({"email": "ana", "password": "secret123"}, id="invalid-email"),
        pytest.param({"email": "", "password": "secret123"}, id="empty-email"),
        pytest.param({"email": "ana@barber.example.com"}, id="no-password"),
        pytest.param({"email": "ana@barber.example.com", "password": ""}, id="empty-password"),
        pytest.param({"email": "ana@barber.example.com", "password": 123456}, id="number-pw"),
        pytest.param({}, id="empty-body"),
        pytest.param("ana@barber.example.com", id="not-an-object"),
    ],
)
def test_sign_in_refuses_an_invalid_body(client, body):
    refused = client.post("/sessions", json=body)
    assert refused.status_code == 400
    assert refused.json["error"] == "Validation fails"


def test_the_token_is_hs256_with_id_version_iat_and_a_seven_day_expiry(app, client, api):
    person = api.person()
    before = int(time.time())
    token = sign_in(client, person.email, person.password).json["token"]
    after = int(time.time())
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    payload = jwt.decode(token, app.config["SECRET_KEY"], algorithms=["HS256"])
    assert set(payload) == {"id", "ver", "iat", "exp"}
    assert payload["id"] == person.id
    assert payload["ver"] == 0
    assert before <= payload["iat"] <= after
    assert payload["exp"] - payload["iat"] == SEVEN_DAYS


def store_password_hash(app, user_id, password_hash):
    with app.app_context():
        db.session.execute(
            update(User).where(User.id == user_id).values(password_hash=password_hash)
        )
        db.session.commit()


def test_a_hash_written_by_the_node_backend_verifies(app, client, api):
    person = api.person()
    node_hash = bcrypt.hashpw(b"from-node-1", bcrypt.gensalt(rounds=8, prefix=b"2a")).decode()
    assert node_hash.startswith("$2a$08$")
    store_password_hash(app, person.id, node_hash)
    signed = sign_in(client, person.email, "from-node-1")
    assert signed.status_code == 200
    assert signed.json["user"]["id"] == person.id
    assert sign_in(client, person.email, person.password).json == {
        "error": "Password does not match"
    }


def test_a_malformed_stored_hash_is_a_wrong_password_not_a_crash(app, client, api):
    person = api.person()
    store_password_hash(app, person.id, "not-a-bcrypt-hash")
    refused = sign_in(client, person.email, person.password)
    assert refused.status_code == 401
    assert refused.json == {"error": "Password does not match"}
