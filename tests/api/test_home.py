"""`GET /`: JSON for an API client, a short page of the same links for a browser."""

import re
from importlib.metadata import version

import pytest

LINKS = {
    "docs": "/docs",
    "openapi": "/openapi.json",
    "health": "/health",
    "queue": "/admin/queue",
    "pages": "/app/",
}
ABOUT = {"name": "GoBarber", "version": version("gobarber"), "links": LINKS}
BROWSERS = {
    "chromium": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
    "firefox": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
}
API_CLIENTS = {
    "no Accept": None,
    "curl": "*/*",
    "json": "application/json",
    "json over html": "text/html;q=0.5, application/json",
    "html as much as json": "text/html, application/json",
}
HREF = re.compile(r'<a href="([^"]+)"')


def get_home(client, accept, method="GET"):
    headers = {} if accept is None else {"Accept": accept}
    return client.open("/", method=method, headers=headers)


@pytest.mark.parametrize("accept", API_CLIENTS.values(), ids=API_CLIENTS.keys())
def test_an_api_client_gets_the_name_version_and_links_as_json(client, accept):
    answer = get_home(client, accept)

    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.json == ABOUT
    assert "Accept" in answer.vary


@pytest.mark.parametrize("accept", BROWSERS.values(), ids=BROWSERS.keys())
def test_a_browser_gets_a_small_page_of_the_same_links(client, accept):
    page = get_home(client, accept)

    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "Accept" in page.vary
    assert len(page.data) < 50 * 1024
    assert '<html lang="en">' in page.text
    assert sorted(HREF.findall(page.text)) == sorted(LINKS.values())
    assert ABOUT["version"] in page.text
    assert re.findall(r"https?://|\"//|<script|<img", page.text) == []


def test_the_page_allows_its_own_style_and_nothing_else(client):
    page = get_home(client, BROWSERS["firefox"])

    nonce = re.search(r'<style nonce="([^"]+)">', page.text).group(1)
    policy = page.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; ")
    assert f"style-src 'nonce-{nonce}'" in policy
    assert "frame-ancestors 'none'" in policy
    assert " style=" not in page.text


@pytest.mark.parametrize(
    "accept", [API_CLIENTS["curl"], BROWSERS["chromium"]], ids=["curl", "chromium"]
)
def test_head_answers_as_get_does_without_a_body(client, accept):
    got, head = get_home(client, accept), get_home(client, accept, method="HEAD")

    assert head.status_code == 200
    assert head.data == b""
    assert head.mimetype == got.mimetype
    assert "Accept" in head.vary


@pytest.mark.parametrize("name", LINKS)
def test_every_link_leads_to_a_page_that_exists(client, name):
    link = get_home(client, "application/json").json["links"][name]

    # /admin/queue sends a stranger to the sign-in form; /health may say 503.
    reached = client.get(link, follow_redirects=True)

    assert reached.status_code in (200, 503), (link, reached.status_code)
