"""The throttles (gobarber/throttle.py): 429 with Retry-After once a limit is spent.

Every app here has the throttles on, with Redis for real; a test that needs a smaller
limit says so with `@limits(...)`.
"""

import io
import socket
import time

import pytest
from PIL import Image

from gobarber.extensions import redis_store
from gobarber.testing import free_port
from tests.apps import running_app
from tests.forms import admin_sign_in
from tests.people import Api

TOO_MANY = {"error": "Too many attempts, try again later"}
FIFTEEN_MINUTES = 15 * 60


@pytest.fixture
def config_overrides():
    return {"RATE_LIMITS": True}


def limits(**settings):
    """Run the test on an app with the throttles on and these settings."""
    return pytest.mark.parametrize(
        "config_overrides", [{"RATE_LIMITS": True, **settings}], ids=["throttled"]
    )


def sign_in(client, email, password, address="127.0.0.1", **headers):
    return client.post(
        "/sessions",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
        headers=headers,
    )


def retry_after(response):
    return int(response.headers["Retry-After"])


def png():
    image = io.BytesIO()
    Image.new("RGB", (4, 4), "teal").save(image, "PNG")
    image.seek(0)
    return image


# ---- signing in ---------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(
    app, client, api, count_queries
):
    person = api.person()
    for _ in range(5):
        assert sign_in(client, person.email, "wrong-one").status_code == 401
    # Counted in Redis, under the app's prefix (so every web process sees them).
    prefix = app.config["MAIL_STREAM_PREFIX"]
    assert redis_store.get(app).keys("{" + prefix + "}:throttle:*")

    refused = sign_in(client, person.email, "wrong-one")
    assert refused.status_code == 429
    assert refused.json == TOO_MANY
    assert 0 < retry_after(refused) <= FIFTEEN_MINUTES
    # Checked before the password: a locked account costs no query and no bcrypt.
    with count_queries() as counter:
        locked = sign_in(client, person.email, person.password)
    assert (locked.status_code, locked.json) == (429, TOO_MANY)
    assert counter.count == 0


def test_the_account_count_ignores_case_and_spaces_of_the_email(client, api):
    person = api.person()
    for variant in (person.email.upper(), person.email.title(), person.email):
        sign_in(client, variant, "wrong-one")
    sign_in(client, person.email.upper(), "wrong-one")
    sign_in(client, person.email, "wrong-one")

    assert sign_in(client, person.email.swapcase(), person.password).status_code == 429


def test_a_successful_sign_in_forgets_the_failures(client, api):
    person = api.person()
    for _ in range(4):
        assert sign_in(client, person.email, "wrong-one").status_code == 401
    assert sign_in(client, person.email, person.password).status_code == 200

    again = [sign_in(client, person.email, "wrong-one").status_code for _ in range(5)]
    assert again == [401] * 5
    assert sign_in(client, person.email, "wrong-one").status_code == 429


def test_other_accounts_keep_their_own_count(client, api):
    locked, other = api.person(), api.person()
    for _ in range(5):
        sign_in(client, locked.email, "wrong-one")
    assert sign_in(client, locked.email, locked.password).status_code == 429

    assert sign_in(client, other.email, other.password).status_code == 200
    assert sign_in(client, other.email, "wrong-one").status_code == 401


@limits(RATE_LIMIT_SIGN_IN_ADDRESS="6 per 15 minutes")
def test_an_address_spraying_many_accounts_is_stopped(client, api):
    people = [api.person() for _ in range(3)]
    tries = [
        sign_in(client, email, "wrong-one", address="203.0.113.9").status_code
        for email in [p.email for p in people] + [f"nobody{n}@barber.example.com" for n in range(3)]
    ]
    assert tries == [401] * 6

    refused = sign_in(client, "someone-else@barber.example.com", "x", address="203.0.113.9")
    assert (refused.status_code, refused.json) == (429, TOO_MANY)
    assert 0 < retry_after(refused) <= FIFTEEN_MINUTES
    # Per address: the accounts themselves are not locked for anyone else.
    assert sign_in(client, people[0].email, people[0].password).status_code == 200


@limits(RATE_LIMIT_SIGN_IN_ADDRESS="3 per 15 minutes")
def test_only_failed_sign_ins_count_against_the_address(client, api):
    # A shop's customers behind one address sign in all day; that is no attack.
    people = [api.person() for _ in range(3)]
    for person in people * 2:
        assert sign_in(client, person.email, person.password).status_code == 200

    failures = [sign_in(client, p.email, "wrong-one").status_code for p in people * 2]
    assert failures == [401, 401, 401, 429, 429, 429]


def test_admin_sign_in_shares_the_count_and_answers_with_its_page(client, api):
    person = api.person()
    for _ in range(3):
        assert sign_in(client, person.email, "wrong-one").status_code == 401
    for _ in range(2):
        assert admin_sign_in(client, person.email, "wrong-one").status_code == 401

    page = admin_sign_in(client, person.email.upper(), person.password)
    assert page.status_code == 429
    assert page.mimetype == "text/html"
    assert "Too many attempts, try again later" in page.get_data(as_text=True)
    assert 0 < retry_after(page) <= FIFTEEN_MINUTES
    refused = sign_in(client, person.email, person.password)
    assert (refused.status_code, refused.json) == (429, TOO_MANY)


def test_an_admin_sign_in_forgets_the_failures_too(client, api):
    person = api.person()
    for _ in range(4):
        sign_in(client, person.email, "wrong-one")
    assert admin_sign_in(client, person.email, person.password).status_code == 302

    again = [sign_in(client, person.email, "wrong-one").status_code for _ in range(5)]
    assert again == [401] * 5
    assert sign_in(client, person.email, "wrong-one").status_code == 429


# ---- per account or address, every request counted ----------------------------------


@limits(RATE_LIMIT_SIGN_UP="2 per minute")
def test_sign_up_is_limited_per_address_and_profile_changes_are_not(client, api):
    person = api.person()
    body = {"name": "Bia", "email": "bia@barber.example.com", "password": "secret123"}
    assert client.post("/users", json=body).status_code == 200

    refused = client.post("/users", json={**body, "email": "cai@barber.example.com"})
    assert (refused.status_code, refused.json) == (429, TOO_MANY)
    assert 0 < retry_after(refused) <= 60
    elsewhere = client.post(
        "/users",
        json={**body, "email": "cai@barber.example.com"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert elsewhere.status_code == 200
    for name in ("Ana", "Ana Maria", "Ana M."):
        changed = client.put("/users", json={"name": name}, headers=person.headers)
        assert changed.status_code == 200


@limits(RATE_LIMIT_BOOKING="2 per minute")
def test_booking_is_limited_per_account(api, slot):
    provider, customer, other = api.provider(), api.person(), api.person()
    assert api.book(customer, provider, slot(hour=9)).status_code == 200
    assert api.book(customer, provider, slot(hour=10)).status_code == 200

    refused = api.book(customer, provider, slot(hour=11))
    assert (refused.status_code, refused.json) == (429, TOO_MANY)
    assert 0 < retry_after(refused) <= 60
    assert api.book(other, provider, slot(hour=11)).status_code == 200


@limits(RATE_LIMIT_CANCEL="2 per minute")
def test_cancelling_is_limited_per_account(client, api, slot):
    provider, customer = api.provider(), api.person()
    ids = [api.book(customer, provider, slot(hour=hour)).json["id"] for hour in (9, 10, 11)]

    answers = [
        client.delete(f"/appointments/{i}", headers=customer.headers).status_code for i in ids
    ]
    assert answers == [200, 200, 429]
    # Booking is counted apart from cancelling.
    assert api.book(customer, provider, slot(hour=12)).status_code == 200


@limits(RATE_LIMIT_UPLOAD="2 per minute")
def test_uploads_are_limited_per_account(client, api):
    person, other = api.person(), api.person()

    def upload(who):
        return client.post("/files", data={"file": (png(), "me.png")}, headers=who.headers)

    assert [upload(person).status_code for _ in range(2)] == [200, 200]
    refused = upload(person)
    assert (refused.status_code, refused.json) == (429, TOO_MANY)
    assert upload(other).status_code == 200


@limits(RATE_LIMIT_BOOKING="2 per minute")
def test_a_forged_token_is_counted_by_address(client, api, slot):
    provider = api.provider()
    forged = {"Authorization": "Bearer not.a.token"}
    body = {"provider_id": provider.id, "date": slot().isoformat()}
    answers = [client.post("/appointments", json=body, headers=forged) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [401, 401, 429]


# ---- every route --------------------------------------------------------------------


@limits(RATE_LIMIT_DEFAULT="3 per minute")
def test_every_route_shares_the_default_limit_per_address(client, api):
    person = api.person()  # from 127.0.0.1, which has used its count now
    address = {"REMOTE_ADDR": "203.0.113.30"}
    routes = ["/providers", "/openapi.json", "/notifications", "/providers"]
    answers = [
        client.get(route, headers=person.headers, environ_base=address).status_code
        for route in routes
    ]
    # Three routes, one count: the fourth request is refused whatever its route.
    assert answers == [200, 200, 200, 429]
    refused = client.get("/appointments", headers=person.headers, environ_base=address)
    assert refused.json == TOO_MANY
    elsewhere = client.get(
        "/providers", headers=person.headers, environ_base={"REMOTE_ADDR": "198.51.100.7"}
    )
    assert elsewhere.status_code == 200


@limits(RATE_LIMIT_DEFAULT="1 per minute")
@pytest.mark.parametrize("path", ["/health", "/health/mail", "/metrics"])
def test_the_probes_are_never_throttled(client, path):
    assert [client.get("/openapi.json").status_code for _ in range(2)] == [200, 429]
    assert [client.get(path).status_code for _ in range(5)].count(429) == 0


SMALL_LIMITS = {"RATE_LIMIT_DEFAULT": "2 per minute", "RATE_LIMIT_SIGN_IN_ACCOUNT": "1/hour"}


def test_rate_limits_off_refuses_nothing(database_url, tmp_path):
    def answers(rate_limits):
        with running_app(database_url, tmp_path, RATE_LIMITS=rate_limits, **SMALL_LIMITS) as app:
            client = app.test_client()
            tries = [sign_in(client, "nobody@barber.example.com", "x") for _ in range(4)]
            return [answer.status_code for answer in tries]

    assert answers(rate_limits=True) == [401, 429, 429, 429]
    assert answers(rate_limits=False) == [401, 401, 401, 401]


# ---- the client's address -----------------------------------------------------------


def fail_from(client, number, forwarded):
    """A failed sign-in for a fresh account, through `X-Forwarded-For: forwarded`."""
    return sign_in(
        client,
        f"nobody{number}@barber.example.com",
        "wrong-one",
        address="10.0.0.1",
        **{"X-Forwarded-For": forwarded},
    ).status_code


@limits(RATE_LIMIT_SIGN_IN_ADDRESS="2 per 15 minutes", TRUSTED_PROXIES=0)
def test_without_trusted_proxies_x_forwarded_for_is_ignored(client):
    assert [fail_from(client, 1, "192.0.2.1"), fail_from(client, 2, "192.0.2.2")] == [401, 401]
    # A forged header buys no fresh count: the connection's address is what counts.
    assert fail_from(client, 3, "192.0.2.3") == 429


@limits(RATE_LIMIT_SIGN_IN_ADDRESS="2 per 15 minutes", TRUSTED_PROXIES=1)
def test_one_trusted_proxy_means_the_last_hop_is_the_client(client):
    assert fail_from(client, 1, "192.0.2.1") == 401
    assert fail_from(client, 2, "6.6.6.6, 192.0.2.1") == 401
    # What the client wrote before the proxy's hop is not trusted...
    assert fail_from(client, 3, "7.7.7.7, 192.0.2.1") == 429
    # ...and another client behind the same proxy has its own count.
    assert fail_from(client, 4, "192.0.2.2") == 401


# ---- Redis down ---------------------------------------------------------------------


@pytest.fixture
def closed_port_app(database_url, tmp_path):
    with running_app(
        database_url,
        tmp_path,
        RATE_LIMITS=True,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    ) as app:
        yield app


def test_with_redis_down_sign_in_answers_as_usual(closed_port_app, caplog):
    client = closed_port_app.test_client()
    person = Api(client).person()
    answers = [sign_in(client, person.email, "wrong-one").status_code for _ in range(3)]
    answers.append(sign_in(client, person.email, person.password).status_code)

    assert answers == [401, 401, 401, 200]
    limiter_logs = [r for r in caplog.records if r.name == "flask-limiter"]
    assert [r.levelname for r in limiter_logs] == ["WARNING"]
    assert not any(record.exc_info for record in caplog.records)


def test_with_redis_down_the_process_still_counts_in_memory(closed_port_app):
    client = closed_port_app.test_client()
    person = Api(client).person()
    answers = [sign_in(client, person.email, "wrong-one").status_code for _ in range(6)]
    assert answers == [401] * 5 + [429]


@pytest.fixture
def hung_redis():
    """A port that accepts connections and never answers: a Redis that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


@pytest.mark.timeout(30)
def test_a_hung_redis_costs_a_request_little(database_url, tmp_path, hung_redis):
    with running_app(database_url, tmp_path, RATE_LIMITS=True, REDIS_URL=hung_redis) as app:
        client = app.test_client()
        started = time.monotonic()
        answer = sign_in(client, "nobody@barber.example.com", "wrong-one")
        elapsed = time.monotonic() - started
        later = [sign_in(client, "nobody@barber.example.com", "x") for _ in range(5)]

    assert answer.status_code == 401
    assert elapsed < 1.0, f"a sign-in took {elapsed:.2f}s with Redis hung"
    # Counted in memory meanwhile: the fifth failure is the last one let through.
    assert [attempt.status_code for attempt in later] == [401] * 4 + [429]
