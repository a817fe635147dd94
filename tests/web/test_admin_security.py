"""The admin page's sessions (in Redis) and its forms' CSRF tokens."""

import re

import msgspec
import pytest

from gobarber.extensions import db, session_redis
from gobarber.mail import operations
from gobarber.models import User
from tests.apps import private_app, running_app
from tests.forms import form_token
from tests.people import Api

pytestmark = pytest.mark.sends_mail

COOKIE = "session"


def make_admin(app, person):
    with app.app_context():
        db.session.get(User, person.id).admin = True
        db.session.commit()


def sign_in(client, person):
    """Sign `person` in on the admin page; return the session id the cookie holds."""
    credentials = {"email": person.email, "password": person.password}
    signed = client.post("/admin/login", data={**credentials, "csrf_token": form_token(client)})
    assert signed.status_code == 302, signed.text
    return client.get_cookie(COOKIE, path="/").value


def session_key(app, session_id):
    return "{" + app.config["MAIL_STREAM_PREFIX"] + "}:session:" + session_id


def stored_session(app, session_id):
    """The session's data as Redis holds it, or None."""
    raw = session_redis.get(app).get(session_key(app, session_id))
    return None if raw is None else msgspec.msgpack.decode(raw)


@pytest.fixture
def operator(app, api):
    person = api.person("Operadora")
    make_admin(app, person)
    return person


def test_the_cookie_holds_only_an_id_and_the_session_lives_in_redis(app, client, operator):
    session_id = sign_in(client, operator)

    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", session_id)  # 32 random bytes, nothing else
    stored = stored_session(app, session_id)
    assert stored["user_id"] == operator.id
    ttl = session_redis.get(app).ttl(session_key(app, session_id))
    assert 0 < ttl <= app.config["PERMANENT_SESSION_LIFETIME"]
    assert client.get("/admin/queue").status_code == 200


def test_signing_in_gives_a_new_session_id(app, client, operator):
    form_token(client)  # a visitor's session, before signing in
    before = client.get_cookie(COOKIE, path="/").value

    after = sign_in(client, operator)

    assert after != before
    assert stored_session(app, before) is None


def test_logout_deletes_the_session_and_the_old_cookie_opens_nothing(app, client, operator):
    session_id = sign_in(client, operator)
    assert stored_session(app, session_id) is not None

    out = client.post("/admin/logout", data={"csrf_token": form_token(client, "/admin/queue")})

    assert out.status_code == 302
    assert stored_session(app, session_id) is None
    replay = app.test_client()
    replay.set_cookie(COOKIE, session_id, path="/")
    refused = replay.get("/admin/queue")
    assert refused.status_code == 302
    assert refused.headers["Location"].startswith("/admin/login")


def test_a_password_change_through_the_api_ends_the_admin_session(app, client, operator):
    session_id = sign_in(client, operator)
    assert client.get("/admin/queue").status_code == 200

    changed = client.put(
        "/users",
        json={
            "oldPassword": operator.password,
            "password": "n3w-secret",
            "confirmPassword": "n3w-secret",
        },
        headers=operator.headers,
    )

    assert changed.status_code == 200, changed.json
    after = client.get("/admin/queue")
    assert after.status_code == 302
    assert after.headers["Location"].startswith("/admin/login")
    assert stored_session(app, session_id) is None


@pytest.mark.parametrize(("app_env", "secure"), [("production", True), ("development", False)])
def test_the_cookie_flags(database_url, tmp_path, app_env, secure):
    with running_app(database_url, tmp_path, APP_ENV=app_env) as app:
        client = app.test_client()
        person = Api(client).person("Operadora")
        make_admin(app, person)
        credentials = {"email": person.email, "password": person.password}
        signed = client.post("/admin/login", data={**credentials, "csrf_token": form_token(client)})

        cookie = signed.headers["Set-Cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        flags = {flag.strip().split("=")[0].lower() for flag in cookie.split(";")[1:]}
        assert {"httponly", "expires", "path"} <= flags
        assert "SameSite=Lax" in cookie
        assert "Path=/;" in cookie
        assert ("secure" in flags) is secure


@pytest.mark.parametrize("token", [None, "not-a-token", "another-session"])
def test_sign_in_without_its_token_is_refused_and_signs_nobody_in(app, client, operator, token):
    form_token(client)  # the form was shown: the session holds a token
    if token == "another-session":
        token = form_token(app.test_client())
    data = {"email": operator.email, "password": operator.password}
    if token is not None:
        data["csrf_token"] = token

    refused = client.post("/admin/login", data=data)

    assert refused.status_code == 400
    assert refused.mimetype == "text/html"
    assert 'id="refused"' in refused.text and "expired" in refused.text
    assert client.get("/admin/queue").status_code == 302


def test_sign_in_with_no_session_yet_still_needs_the_token(client, operator):
    refused = client.post(
        "/admin/login", data={"email": operator.email, "password": operator.password}
    )

    assert refused.status_code == 400
    assert client.get("/admin/queue").status_code == 302


@pytest.fixture
def dead_letter(app, shop, worker, smtp_server):
    """A cancellation mail the SMTP server refused for good; return its event id."""
    smtp_server.refuse(shop.provider.email)
    canceled = shop.cancellation()
    worker.loop()
    return shop.delivery(canceled["id"]).event_id


def dead_ids(app, queue):
    with app.app_context():
        return [letter["event_id"] for letter in operations.dead_letters(queue)]


@pytest.mark.parametrize("token", [None, "not-a-token", "another-session"])
def test_a_retry_without_its_token_is_refused_and_retries_nothing(
    app, client, operator, queue, dead_letter, token
):
    sign_in(client, operator)
    assert dead_ids(app, queue) == [dead_letter]
    if token == "another-session":
        other = app.test_client()
        sign_in(other, operator)
        token = form_token(other, "/admin/queue")
    data = {"event_id": dead_letter}
    if token is not None:
        data["csrf_token"] = token

    refused = client.post("/admin/queue/retry", data=data)

    assert refused.status_code == 400
    assert 'id="refused"' in refused.text
    assert dead_ids(app, queue) == [dead_letter]
    # The page's own token does it.
    data["csrf_token"] = form_token(client, "/admin/queue")
    assert client.post("/admin/queue/retry", data=data).status_code == 302
    assert dead_ids(app, queue) == []


@pytest.mark.parametrize("field", ["email", "password"])
def test_a_nul_in_the_sign_in_form_is_a_wrong_credential_not_a_500(client, operator, field):
    data = {
        "email": operator.email,
        "password": operator.password,
        "csrf_token": form_token(client),
    }
    data[field] = data[field][:3] + "\x00" + data[field][3:]

    answer = client.post("/admin/login", data=data)

    assert answer.status_code == 401
    assert 'id="login-error"' in answer.text
    assert 'id="email"' in answer.text  # the form again


def test_with_redis_down_admin_pages_answer_503_and_the_api_still_works(
    database_url, tmp_path, smtp_server
):
    smtp = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_server.port}
    with private_app(database_url, tmp_path, **smtp) as (app, private):
        client = app.test_client()
        operator = Api(client).person("Operadora")
        make_admin(app, operator)
        sign_in(client, operator)
        private.stop()

        for path in ("/admin/queue", "/admin/login"):
            page = client.get(path)
            assert page.status_code == 503, path
            assert page.mimetype == "text/html"
            assert 'id="unavailable"' in page.text
        fresh = app.test_client().get("/admin/login")  # no cookie: the save fails instead
        assert fresh.status_code == 503
        assert 'id="unavailable"' in fresh.text
        assert "Set-Cookie" not in fresh.headers

        body = {"email": "nova@barber.example.com", "password": "secret123"}
        signed_up = client.post("/users", json={"name": "Nova", **body})
        signed_in = client.post("/sessions", json=body)
        assert (signed_up.status_code, signed_in.status_code) == (200, 200)
        assert "Set-Cookie" not in signed_up.headers
        assert "Set-Cookie" not in signed_in.headers


def test_only_admin_pages_read_or_refresh_the_session(app, client, operator):
    session_id = sign_in(client, operator)
    key = session_key(app, session_id)
    refreshed = client.get("/admin/queue")
    assert "Path=/;" in refreshed.headers["Set-Cookie"]  # refreshed on every admin page
    session_redis.get(app).expire(key, 100)

    # The browser would not send the cookie outside /admin; a client that does is ignored.
    body = {"email": operator.email, "password": operator.password}
    stray = app.test_client(use_cookies=False)  # sends the Cookie header as given
    api = stray.post("/sessions", json=body, headers={"Cookie": f"{COOKIE}={session_id}"})

    assert api.status_code == 200
    assert "Set-Cookie" not in api.headers
    assert session_redis.get(app).ttl(key) <= 100  # neither read nor written
