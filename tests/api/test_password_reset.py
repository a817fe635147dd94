"""Forgotten passwords: `POST /password/forgot` mails a single-use link on the high stream,
`POST /password/reset` sets the password with its token and voids every older token.

Each test drives the real worker against real Redis, PostgreSQL and the in-process SMTP
server, and reads what a person would see: the answer, the mail, the rows.
"""

import base64
import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from gobarber.extensions import db
from gobarber.models import MailDelivery, Notification, PasswordReset
from gobarber.testing import free_port
from tests.streams import owed, pending

pytestmark = pytest.mark.sends_mail

WEB_URL = "https://app.gobarber.example"
LINK = re.compile(re.escape(WEB_URL) + r"/reset-password\?token=([A-Za-z0-9_-]+)")
INVALID_TOKEN = {"error": "Invalid token"}
TOKEN_EXPIRED = {"error": "Token expired"}
VALIDATION_FAILS = "Validation fails"
NEW_PASSWORD = "brandnew9"


@pytest.fixture
def config_overrides():
    return {"APP_WEB_URL": WEB_URL}


@pytest.fixture
def person(api):
    return api.person("Joana Souza", password="secret123")


def forgot(client, email):
    answer = client.post("/password/forgot", json={"email": email})
    assert (answer.status_code, answer.data) == (204, b""), answer.data
    return answer


def reset(client, token, password=NEW_PASSWORD, confirmation=None):
    body = {
        "token": token,
        "password": password,
        "password_confirmation": password if confirmation is None else confirmation,
    }
    return client.post("/password/reset", json=body)


def sign_in(client, email, password):
    return client.post("/sessions", json={"email": email, "password": password})


def rows(app, model):
    with app.app_context():
        found = db.session.scalars(select(model).order_by(model.id)).all()
        db.session.expunge_all()
        return found


def shift_resets(app, **delta):
    """Move every reset's creation and expiry back by `delta`, as if made that long ago."""
    back = timedelta(**delta)
    with app.app_context():
        for row in db.session.scalars(select(PasswordReset)):
            row.created_at -= back
            row.expires_at -= back
        db.session.commit()


def token_of(message):
    """The token of the link in a mail; the plain and HTML parts must carry the same one."""
    plain = LINK.findall(message.get_body(("plain",)).get_content())
    html = LINK.findall(message.get_body(("html",)).get_content())
    assert plain and set(plain) == set(html), (plain, html)
    return plain[0]


def mailed_token(worker, smtp_server, count):
    """Run one worker pass; return the token of the `count`-th mail received."""
    worker.loop()
    messages = smtp_server.messages
    assert len(messages) == count, [m["Subject"] for m in messages]
    return token_of(messages[-1])


def test_known_and_unknown_addresses_get_the_same_empty_204(app, client, person, queue, redis_conn):
    unknown = forgot(client, "nobody@barber.example.com")
    assert (rows(app, PasswordReset), rows(app, MailDelivery)) == ([], [])
    assert owed(app) == 0

    known = forgot(client, person.email.upper())

    assert (known.status_code, known.data) == (unknown.status_code, unknown.data)
    assert known.headers.get("Content-Type") == unknown.headers.get("Content-Type")
    [row] = rows(app, PasswordReset)
    [delivery] = rows(app, MailDelivery)
    assert row.user_id == person.id and row.used_at is None
    assert (delivery.kind, delivery.priority, delivery.recipient, delivery.status) == (
        "password_reset",
        "high",
        person.email,
        "queued",
    )
    assert delivery.password_reset_id == row.id and delivery.published_at is not None
    [(_, fields)] = redis_conn.xrange(queue.stream_key("high"))
    assert fields["event_id"] == delivery.event_id
    assert redis_conn.xlen(queue.stream_key("default")) == 0


def test_the_mail_carries_a_link_that_resets_the_password_once(
    app, client, person, worker, smtp_server, queue
):
    forgot(client, person.email)

    token = mailed_token(worker, smtp_server, 1)

    [message] = smtp_server.messages
    assert message["Subject"] == "[GoBarber] Recuperação de senha"
    assert message["To"] == f"Joana Souza <{person.email}>"
    assert smtp_server.envelopes[0].rcpt_tos == [person.email]
    for part in (message.get_body(("plain",)), message.get_body(("html",))):
        content = part.get_content()
        assert "Olá, " in content and "Joana Souza" in content
        assert "expira em 2 horas" in content
        assert "nada muda na" in content
    [delivery] = rows(app, MailDelivery)
    assert delivery.status == "sent"
    assert pending(queue, "high") == 0

    first = reset(client, token)
    assert (first.status_code, first.data) == (204, b"")
    again = reset(client, token, password="another99")
    assert (again.status_code, again.json) == (400, INVALID_TOKEN)

    old_jwt = client.get("/notifications", headers=person.headers)
    assert (old_jwt.status_code, old_jwt.json) == (401, {"error": "Token invalid"})
    assert sign_in(client, person.email, "secret123").status_code == 401
    assert sign_in(client, person.email, "another99").status_code == 401
    fresh = sign_in(client, person.email, NEW_PASSWORD)
    assert fresh.status_code == 200
    as_fresh = {"Authorization": f"Bearer {fresh.json['token']}"}
    assert client.get("/notifications", headers=as_fresh).status_code == 200
    [row] = rows(app, PasswordReset)
    assert row.used_at is not None


def test_a_reset_voids_the_users_older_reset_links(app, client, person, api, worker, smtp_server):
    other = api.person("Outra Pessoa")
    forgot(client, person.email)
    older = mailed_token(worker, smtp_server, 1)
    forgot(client, other.email)
    others = mailed_token(worker, smtp_server, 2)
    shift_resets(app, minutes=2)  # past the one-a-minute throttle
    forgot(client, person.email)
    newer = mailed_token(worker, smtp_server, 3)
    assert len({older, newer, others}) == 3

    assert reset(client, newer).status_code == 204

    refused = reset(client, older, password="another99")
    assert (refused.status_code, refused.json) == (400, INVALID_TOKEN)
    assert sign_in(client, person.email, NEW_PASSWORD).status_code == 200
    # Another user's link is theirs alone: it still works.
    assert reset(client, others, password="another99").status_code == 204
    assert sign_in(client, other.email, "another99").status_code == 200


@pytest.mark.parametrize("config_overrides", [{"APP_WEB_URL": WEB_URL, "PASSWORD_RESET_TTL": 60}])
def test_a_token_past_its_lifetime_is_refused(app, client, person, worker, smtp_server):
    forgot(client, person.email)
    token = mailed_token(worker, smtp_server, 1)
    assert "expira em 1 minuto" in smtp_server.messages[0].get_body(("plain",)).get_content()
    [row] = rows(app, PasswordReset)
    assert row.expires_at - row.created_at == timedelta(seconds=60)
    shift_resets(app, seconds=61)

    expired = reset(client, token)

    assert (expired.status_code, expired.json) == (400, TOKEN_EXPIRED)
    assert sign_in(client, person.email, "secret123").status_code == 200
    assert client.get("/notifications", headers=person.headers).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD},
        {"token": "TOKEN", "password_confirmation": NEW_PASSWORD},
        {"token": "TOKEN", "password": NEW_PASSWORD},
        {"token": "TOKEN", "password": "12345", "password_confirmation": "12345"},
        {"token": "TOKEN", "password": NEW_PASSWORD, "password_confirmation": "brandnew8"},
        {"token": 123456, "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD},
        {"token": ["TOKEN"], "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD},
        {"token": "TOKEN", "password": "a" * 73, "password_confirmation": "a" * 73},
        # 37 characters, 74 bytes: bcrypt would read only 72 of them.
        {"token": "TOKEN", "password": "ã" * 37, "password_confirmation": "ã" * 37},
        {"token": "", "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD},
    ],
    ids=[
        "empty",
        "no-token",
        "no-password",
        "no-confirmation",
        "short-password",
        "mismatch",
        "number-token",
        "list-token",
        "73-byte-password",
        "74-utf8-bytes",
        "empty-token",
    ],
)
def test_a_bad_reset_body_is_refused_and_spends_no_token(
    app, client, person, worker, smtp_server, body
):
    forgot(client, person.email)
    token = mailed_token(worker, smtp_server, 1)
    body = {key: token if value == "TOKEN" else value for key, value in body.items()}

    refused = client.post("/password/reset", json=body)

    assert (refused.status_code, refused.json["error"]) == (400, VALIDATION_FAILS)
    assert sign_in(client, person.email, "secret123").status_code == 200
    assert reset(client, token).status_code == 204


@pytest.mark.parametrize(
    "body", [{}, {"email": "not-an-email"}, {"email": 42}, ["someone@barber.example.com"]]
)
def test_a_bad_forgot_body_is_refused(client, body):
    refused = client.post("/password/forgot", json=body)
    assert (refused.status_code, refused.json["error"]) == (400, VALIDATION_FAILS)


def test_an_unknown_token_is_invalid(client, person):
    made_up = base64.urlsafe_b64encode(b"\0" * 32).rstrip(b"=").decode()
    refused = reset(client, made_up)
    assert (refused.status_code, refused.json) == (400, INVALID_TOKEN)


def test_asking_again_within_a_minute_sends_nothing_more(app, client, person, worker, smtp_server):
    forgot(client, person.email)
    mailed_token(worker, smtp_server, 1)

    forgot(client, person.email)
    worker.loop()

    assert len(smtp_server.messages) == 1
    assert len(rows(app, PasswordReset)) == 1 and len(rows(app, MailDelivery)) == 1


def test_at_most_five_mails_an_hour_per_address(app, client, person, api, worker, smtp_server):
    for _ in range(6):
        forgot(client, person.email)
        shift_resets(app, seconds=61)
    assert len(rows(app, PasswordReset)) == 5
    # The count is the address's own: another address is not held back.
    forgot(client, api.person().email)
    assert len(rows(app, PasswordReset)) == 6

    shift_resets(app, minutes=55)  # the first of the five is now more than an hour old
    forgot(client, person.email)

    assert len(rows(app, PasswordReset)) == 7
    worker.loop()
    assert len(smtp_server.messages) == 7


def test_no_token_is_stored_in_the_database_or_on_the_stream(
    app, client, person, worker, smtp_server, queue, redis_conn
):
    forgot(client, person.email)
    [(_, fields)] = redis_conn.xrange(queue.stream_key("high"))
    token = mailed_token(worker, smtp_server, 1)

    [row] = rows(app, PasswordReset)
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8 >= 128
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    with app.app_context():
        tables = (PasswordReset.__table__, MailDelivery.__table__)
        dumped = " ".join(
            str(value)
            for table in tables
            for record in db.session.execute(select(table))
            for value in record
        )
    assert row.nonce in dumped and row.token_hash in dumped
    assert token not in dumped
    assert token not in " ".join(f"{k}={v}" for k, v in fields.items())
    # What a dump holds opens nothing.
    for leaked in (row.nonce, row.token_hash):
        refused = reset(client, leaked)
        assert (refused.status_code, refused.json) == (400, INVALID_TOKEN)
    assert reset(client, token).status_code == 204


@pytest.mark.parametrize("how", ["used", "expired"])
def test_a_reset_mail_no_longer_owed_is_never_sent(
    app, client, person, worker, smtp_server, queue, redis_conn, how
):
    forgot(client, person.email)
    [row] = rows(app, PasswordReset)
    if how == "used":
        token = row.token(app.config["SECRET_KEY"])
        assert reset(client, token).status_code == 204
    else:
        shift_resets(app, hours=2, seconds=1)

    worker.loop()

    assert smtp_server.messages == []
    [delivery] = rows(app, MailDelivery)
    assert (delivery.status, delivery.sent_at, delivery.attempts) == ("canceled", None, 0)
    assert how in delivery.last_error
    assert owed(app) == 0
    assert rows(app, Notification) == []  # nobody is told in-app: one asks again


@pytest.mark.parametrize("config_overrides", [{"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}])
def test_with_redis_down_the_request_still_answers_204_and_the_row_waits(app, client, person):
    forgot(client, person.email)

    [delivery] = rows(app, MailDelivery)
    assert (delivery.status, delivery.published_at) == ("queued", None)


def test_the_document_declares_both_routes_as_204_without_content(client):
    paths = client.get("/openapi.json").json["paths"]

    for path in ("/password/forgot", "/password/reset"):
        answers = paths[path]["post"]["responses"]
        assert set(answers) == {"204", "400"}
        assert "content" not in answers["204"] and answers["204"]["description"]
        assert "content" in answers["400"]
        assert "requestBody" in paths[path]["post"] and "security" not in paths[path]["post"]
