"""Passwords: bcrypt at the configured cost, cheap old hashes raised at sign-in, nothing
past bcrypt's 72 bytes, and an unknown email that costs what a wrong password costs."""

import bcrypt
import pytest
from sqlalchemy import select, update

from gobarber.extensions import db
from gobarber.models import User

VALIDATION_FAILS = "Validation fails"
# 72 bytes each, which bcrypt reads in full; one more character is one too many.
LONGEST = ["A" * 72, "ã" * 36, "€" * 24]


def sign_in(client, email, password):
    return client.post("/sessions", json={"email": email, "password": password})


def stored_hash(app, email):
    with app.app_context():
        return db.session.scalar(select(User.password_hash).where(User.email == email))


def store_hash(app, email, password_hash):
    with app.app_context():
        db.session.execute(
            update(User).where(User.email == email).values(password_hash=password_hash)
        )
        db.session.commit()


def cost_of(password_hash):
    return int(password_hash.split(b"$")[2])


@pytest.fixture
def bcrypt_calls(monkeypatch):
    """Record the cost of the hash each `bcrypt.checkpw` compares against, and each
    `bcrypt.hashpw` call; both still do their work."""
    calls = {"checked": [], "hashed": 0}
    checkpw, hashpw = bcrypt.checkpw, bcrypt.hashpw

    def recording_checkpw(password, hashed_password):
        calls["checked"].append(cost_of(hashed_password))
        return checkpw(password, hashed_password)

    def recording_hashpw(password, salt):
        calls["hashed"] += 1
        return hashpw(password, salt)

    monkeypatch.setattr(bcrypt, "checkpw", recording_checkpw)
    monkeypatch.setattr(bcrypt, "hashpw", recording_hashpw)
    return calls


# ---- the cost -------------------------------------------------------------------------


@pytest.mark.parametrize("config_overrides", [{"BCRYPT_ROUNDS": 12}], ids=["default-cost"])
def test_a_new_hash_has_the_configured_cost(app, client):
    body = {"name": "Ana", "email": "ana@barber.example.com", "password": "secret123"}
    assert client.post("/users", json=body).status_code == 200
    assert stored_hash(app, body["email"]).startswith("$2b$12$")
    assert sign_in(client, body["email"], "secret123").status_code == 200


@pytest.mark.parametrize("config_overrides", [{"BCRYPT_ROUNDS": 10}])
@pytest.mark.parametrize("prefix", [b"2a", b"2b"])
def test_a_cheaper_hash_is_raised_to_the_configured_cost_at_sign_in(app, client, api, prefix):
    person, dearer = api.person(), api.person()
    # As the Node backend (bcryptjs, cost 8) wrote them.
    old = bcrypt.hashpw(b"from-node-1", bcrypt.gensalt(rounds=8, prefix=prefix)).decode()
    store_hash(app, person.email, old)
    dearer_hash = bcrypt.hashpw(b"costly-one", bcrypt.gensalt(rounds=11)).decode()
    store_hash(app, dearer.email, dearer_hash)

    assert sign_in(client, person.email, "from-node-1").status_code == 200
    raised = stored_hash(app, person.email)
    assert raised.startswith("$2b$10$")
    assert sign_in(client, person.email, "from-node-1").status_code == 200
    assert stored_hash(app, person.email) == raised
    refused = sign_in(client, person.email, "from-node-2")
    assert refused.json == {"error": "Password does not match"}
    # A hash dearer than the setting is never made cheaper.
    assert sign_in(client, dearer.email, "costly-one").status_code == 200
    assert stored_hash(app, dearer.email) == dearer_hash


# ---- bcrypt's 72 bytes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["A" * 72 + "anything", "ã" * 37, "€" * 25],
    ids=["80-ascii-bytes", "74-bytes-in-37-characters", "75-bytes-in-25-characters"],
)
def test_sign_up_refuses_a_password_over_72_bytes(client, password):
    body = {"name": "Caio", "email": "caio@barber.example.com", "password": password}
    refused = client.post("/users", json=body)
    assert refused.status_code == 400
    assert refused.json["error"] == VALIDATION_FAILS
    assert sign_in(client, body["email"], password[:6]).json == {"error": "User not found"}


@pytest.mark.parametrize("password", LONGEST, ids=["ascii", "two-byte", "three-byte"])
def test_sign_in_takes_72_bytes_and_refuses_more(client, api, password):
    person = api.person(password=password)
    assert sign_in(client, person.email, password).status_code == 200
    for longer in (password + "anything", password + password[0]):
        refused = sign_in(client, person.email, longer)
        assert (refused.status_code, refused.json["error"]) == (400, VALIDATION_FAILS)


@pytest.mark.parametrize("password", LONGEST, ids=["ascii", "two-byte", "three-byte"])
def test_a_profile_takes_a_new_password_of_72_bytes(client, api, password):
    person = api.person(password="secret123")
    body = {"oldPassword": "secret123", "password": password, "confirmPassword": password}
    assert client.put("/users", json=body, headers=person.headers).status_code == 200
    assert sign_in(client, person.email, password).status_code == 200
    assert sign_in(client, person.email, password + "x").json["error"] == VALIDATION_FAILS


CURRENT = "A" * 72
# Its first 72 bytes are CURRENT: bcrypt cutting it would take it for CURRENT.
CURRENT_AND_MORE = CURRENT + "anything"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {
                "oldPassword": CURRENT,
                "password": CURRENT_AND_MORE,
                "confirmPassword": CURRENT_AND_MORE,
            },
            id="new-password",
        ),
        pytest.param(
            {
                "oldPassword": CURRENT_AND_MORE,
                "password": "brandnew9",
                "confirmPassword": "brandnew9",
            },
            id="old-password",
        ),
    ],
)
def test_a_profile_refuses_a_password_over_72_bytes(app, client, api, body):
    person = api.person(password=CURRENT)
    before = stored_hash(app, person.email)
    refused = client.put("/users", json=body, headers=person.headers)
    assert refused.status_code == 400
    assert refused.json["error"] == VALIDATION_FAILS
    assert stored_hash(app, person.email) == before
    assert sign_in(client, person.email, CURRENT).status_code == 200


# ---- unknown emails -------------------------------------------------------------------


@pytest.mark.parametrize(
    "config_overrides", [{"BCRYPT_ROUNDS": 5}, {"BCRYPT_ROUNDS": 6}], ids=["cost-5", "cost-6"]
)
def test_an_unknown_email_costs_one_check_as_a_wrong_password_does(app, client, api, bcrypt_calls):
    person = api.person(password="secret123")
    bcrypt_calls["checked"].clear()
    wrong = sign_in(client, person.email, "not-it-99")
    assert wrong.json == {"error": "Password does not match"}
    assert bcrypt_calls["checked"] == [app.config["BCRYPT_ROUNDS"]]

    bcrypt_calls["checked"].clear()
    bcrypt_calls["hashed"] = 0
    for _ in range(3):
        unknown = sign_in(client, "nobody@barber.example.com", "not-it-99")
        assert (unknown.status_code, unknown.json) == (401, {"error": "User not found"})
    assert bcrypt_calls["checked"] == [app.config["BCRYPT_ROUNDS"]] * 3
    # The hash it checks against is made once per cost, not once per request.
    assert bcrypt_calls["hashed"] <= 1
