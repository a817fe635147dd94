"""Security headers on every answer, the admin pages' own, and where CORS answers."""

import re

import pytest

from tests.apps import running_app

ALLOWED = "https://app.barber.example.com"


@pytest.fixture
def config_overrides():
    return {"CORS_ORIGINS": [ALLOWED, "https://painel.barber.example.com"]}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/openapi.json", 200),
        ("GET", "/providers", 401),  # no token
        ("POST", "/sessions", 400),  # no body
        ("GET", "/no/such/route", 404),
        ("DELETE", "/sessions", 405),
        ("GET", "/health", 200),
    ],
)
def test_every_answer_says_nosniff(client, method, path, status):
    response = client.open(path, method=method)

    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_an_unexpected_error_says_nosniff_too(app, client):
    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    response = client.get("/boom")

    assert response.status_code == 500
    assert response.json == {"error": "Internal server error"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/admin/login", "/admin/queue", "/admin/nothing-here"])
def test_admin_pages_cannot_be_framed_cached_or_run_foreign_content(client, path):
    response = client.get(path)

    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'"


def test_the_admin_pages_inline_style_is_allowed_by_its_nonce_alone(client):
    page = client.get("/admin/login")

    nonce = re.search(r'<style nonce="([^"]+)">', page.text).group(1)
    policy = page.headers["Content-Security-Policy"]
    assert f"style-src 'nonce-{nonce}'" in policy
    assert "unsafe-inline" not in policy
    assert "<script" not in page.text and " style=" not in page.text
    assert nonce not in client.get("/admin/login").headers["Content-Security-Policy"]


def test_api_answers_have_no_admin_headers(client):
    response = client.get("/openapi.json")

    assert "X-Frame-Options" not in response.headers
    assert "Content-Security-Policy" not in response.headers


def test_the_token_answer_is_not_stored(client, api):
    person = api.person("Cliente")

    signed = client.post("/sessions", json={"email": person.email, "password": person.password})

    assert signed.status_code == 200
    assert signed.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("app_env", "hsts"), [("production", True), ("test", False)])
def test_hsts_only_in_production(database_url, tmp_path, app_env, hsts):
    with running_app(database_url, tmp_path, APP_ENV=app_env) as app:
        client = app.test_client()
        for path in ("/openapi.json", "/admin/login", "/no/such/route"):
            header = client.get(path).headers.get("Strict-Transport-Security")
            assert header == ("max-age=31536000; includeSubDomains" if hsts else None), path


def test_cors_answers_the_configured_origins_on_the_api(client):
    allowed = client.get("/openapi.json", headers={"Origin": ALLOWED})
    other = client.get("/openapi.json", headers={"Origin": "https://evil.example.com"})

    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_never_answers_for_admin_pages(client):
    for path in ("/admin/login", "/admin/queue"):
        page = client.get(path, headers={"Origin": ALLOWED})
        preflight = client.options(
            path, headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
        )
        for response in (page, preflight):
            assert "Access-Control-Allow-Origin" not in response.headers, path


def test_cors_is_open_to_every_origin_by_default(database_url, tmp_path):
    anyone = "https://anyone.example.org"
    with running_app(database_url, tmp_path) as app:
        client = app.test_client()
        api = client.get("/openapi.json", headers={"Origin": anyone})
        admin = client.get("/admin/login", headers={"Origin": anyone})

        assert api.headers["Access-Control-Allow-Origin"] == anyone
        assert "Access-Control-Allow-Origin" not in admin.headers
