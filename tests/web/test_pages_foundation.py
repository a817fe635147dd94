"""What every shop page shares: errors as pages, the policy, the reset link's address."""

import re

import pytest

from tests.forms import TOKEN


def test_an_unknown_page_is_a_page_not_json(client):
    missing = client.get("/app/no-such-page", headers={"Accept-Language": "en"})

    assert missing.status_code == 404
    assert missing.mimetype == "text/html"
    assert re.search(r"<h1>(.*?)</h1>", missing.text).group(1) == "There is no such page."
    assert "Traceback" not in missing.text


def test_a_wrong_method_on_a_page_is_a_page(client):
    refused = client.delete("/app/sign-in")

    assert refused.status_code == 405
    assert refused.mimetype == "text/html"


def test_the_api_keeps_its_json_errors(client):
    missing = client.get("/no-such-route", headers={"Accept": "text/html"})

    assert missing.status_code == 404
    assert missing.json == {"error": "Not found"}


def test_a_stale_form_is_told_on_a_page(client):
    refused = client.post("/app/sign-in", data={"email": "ana@example.com", "password": "x"})

    assert refused.status_code == 400
    assert refused.mimetype == "text/html"
    assert "expirou" in refused.text


def test_pages_allow_only_their_own_files(client):
    page = client.get("/app/sign-in")

    policy = page.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'self'; ")
    assert "unsafe" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert re.findall(r"<script(?![^>]*\bsrc=)|\bstyle=", page.text) == []


def test_the_reset_mails_link_leads_to_the_reset_page(client):
    # The mail links to APP_WEB_URL/reset-password, APP_URL unless set: this server.
    followed = client.get("/reset-password?token=abc.def")

    assert followed.status_code == 302
    assert followed.headers["Location"] == "/app/reset-password?token=abc.def"
    page = client.get(followed.headers["Location"])
    assert page.status_code == 200
    assert 'value="abc.def"' in page.text


def test_the_session_cookie_is_the_admin_pages_one(client):
    page = client.get("/app/sign-in")

    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Path=/;" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize(
    ("wanted", "lands"),
    [
        ("/app/profile", "/app/profile"),
        ("/app/../admin/queue", "/app/appointments"),
        ("/app/./profile", "/app/appointments"),
        ("//evil.example/app/", "/app/appointments"),
        ("https://evil.example/app/", "/app/appointments"),
        ("/admin/queue", "/app/appointments"),
    ],
)
def test_signing_in_goes_on_only_to_a_page_of_the_shop(client, api, wanted, lands):
    customer = api.person("Cliente")
    form = client.get("/app/sign-in").text
    token = TOKEN.search(form).group(1)

    signed_in = client.post(
        "/app/sign-in",
        data={
            "csrf_token": token,
            "email": customer.email,
            "password": customer.password,
            "next": wanted,
        },
    )

    assert signed_in.status_code == 302
    assert signed_in.headers["Location"] == lands
