"""Token revocation: a token carries its user's token version, and a password change
raises the version, so every token issued before it is refused."""

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from gobarber.extensions import db
from gobarber.models import User
from gobarber.services.users import revoke_tokens

INVALID = {"error": "Token invalid"}
# Routes a client calls with its token, one read and one write.
CALLS = [("GET", "/notifications"), ("PUT", "/users")]


def sign_in(client, email, password):
    return client.post("/sessions", json={"email": email, "password": password})


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def call(client, method, path, token):
    return client.open(path, method=method, json={}, headers=bearer(token))


def change_password(client, person, old, new):
    body = {"oldPassword": old, "password": new, "confirmPassword": new}
    return client.put("/users", json=body, headers=person.headers)


def token_without_version(app, user_id):
    """A token as issued before versions existed: id, iat and exp only."""
    issued = datetime.now(UTC)
    payload = {"id": user_id, "iat": issued, "exp": issued + timedelta(days=7)}
    return jwt.encode(payload, app.config["SECRET_KEY"], algorithm="HS256")


@pytest.mark.parametrize(("method", "path"), CALLS)
def test_a_password_change_refuses_every_earlier_token(client, api, method, path):
    person = api.person(password="secret123")
    other_device = sign_in(client, person.email, "secret123").json["token"]
    assert call(client, method, path, other_device).status_code == 200

    assert change_password(client, person, "secret123", "brandnew9").status_code == 200

    for earlier in (person.token, other_device):
        refused = call(client, method, path, earlier)
        assert (refused.status_code, refused.json) == (401, INVALID)
    fresh = sign_in(client, person.email, "brandnew9")
    assert fresh.status_code == 200
    assert call(client, method, path, fresh.json["token"]).status_code == 200


def test_only_a_password_change_revokes(client, api):
    person = api.person(password="secret123")
    wrong_old = change_password(client, person, "notmine99", "brandnew9")
    assert wrong_old.status_code == 401
    renamed = client.put("/users", json={"name": "Renamed"}, headers=person.headers)
    assert renamed.status_code == 200
    assert sign_in(client, person.email, "secret123").status_code == 200
    assert client.get("/notifications", headers=person.headers).status_code == 200

    assert change_password(client, person, "secret123", "brandnew9").status_code == 200
    assert client.get("/notifications", headers=person.headers).json == INVALID


def test_a_token_from_before_versions_works_until_the_password_changes(app, client, api):
    person = api.person(password="secret123")
    legacy = token_without_version(app, person.id)
    accepted = client.get("/notifications", headers=bearer(legacy))
    assert accepted.status_code == 200

    assert change_password(client, person, "secret123", "brandnew9").status_code == 200
    refused = client.get("/notifications", headers=bearer(legacy))
    assert (refused.status_code, refused.json) == (401, INVALID)


def test_each_change_revokes_the_tokens_of_the_one_before(client, api):
    person = api.person(password="secret123")
    change_password(client, person, "secret123", "second99")
    second = sign_in(client, person.email, "second99").json["token"]
    assert client.get("/notifications", headers=bearer(second)).status_code == 200
    body = {"oldPassword": "second99", "password": "third999", "confirmPassword": "third999"}
    assert client.put("/users", json=body, headers=bearer(second)).status_code == 200
    assert client.get("/notifications", headers=bearer(second)).json == INVALID
    third = sign_in(client, person.email, "third999").json["token"]
    assert client.get("/notifications", headers=bearer(third)).status_code == 200


def test_revoke_tokens_refuses_the_tokens_issued_so_far(app, client, api):
    person, bystander = api.person(), api.person()
    with app.app_context():
        revoke_tokens(user=db.session.get(User, person.id))
        db.session.commit()
    refused = client.get("/notifications", headers=person.headers)
    assert (refused.status_code, refused.json) == (401, INVALID)
    assert client.get("/notifications", headers=bystander.headers).status_code == 200
    fresh = sign_in(client, person.email, person.password).json["token"]
    assert client.get("/notifications", headers=bearer(fresh)).status_code == 200
