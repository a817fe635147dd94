"""`/docs`: Swagger UI from the files of an installed package, under a strict policy.

The page loads nothing from another host and runs no inline script; a real headless
Chromium shows that it still renders every operation of `/openapi.json` and that "Try it
out" reaches this server.
"""

import re

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browsers import page_failures, served

ASSET = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"')
TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
ONE_YEAR = 365 * 24 * 3600


@pytest.fixture
def page(client):
    served_page = client.get("/docs")
    assert served_page.status_code == 200
    assert served_page.mimetype == "text/html"
    return served_page


def policy_of(response):
    """Return the Content-Security-Policy of `response` as {directive: sources}."""
    directives = (
        part.strip().split(" ", 1)
        for part in response.headers["Content-Security-Policy"].split(";")
    )
    return {name: sources.split() for name, sources in directives}


def test_every_file_the_page_loads_is_served_from_here_with_its_type(client, page):
    assets = ASSET.findall(page.text)

    assert len(assets) == 5, assets
    for address in assets:
        assert address.startswith("/") and not address.startswith("//"), address
        served_file = client.get(address)
        assert served_file.status_code == 200, address
        assert served_file.mimetype == TYPES[address[address.rindex(".") :]], address
        assert served_file.headers["X-Content-Type-Options"] == "nosniff"


def test_swagger_ui_files_are_kept_for_a_year_under_the_release_in_their_address(client, page):
    swagger_files = [address for address in ASSET.findall(page.text) if "/swagger-ui/" in address]

    assert len(swagger_files) == 4, swagger_files
    for address in swagger_files:
        cache = client.get(address).cache_control
        assert cache.max_age == ONE_YEAR and cache.immutable and cache.public, address


@pytest.mark.parametrize(
    "address",
    [
        "/docs/swagger-ui/0.0.1/swagger-ui.css",  # not the release installed
        "/docs/swagger-ui/{release}/oauth2-redirect.html",  # in the package, not loaded
        "/docs/swagger-ui/{release}/../flask_swagger_ui.py",
    ],
)
def test_nothing_else_of_the_package_is_served(client, page, address):
    release = re.search(r"/docs/swagger-ui/([^/]+)/", page.text).group(1)

    refused = client.get(address.format(release=release))

    assert refused.status_code == 404
    assert refused.json == {"error": "Not found"}


def test_the_page_and_its_own_script_name_no_other_host(client, page):
    script = client.get("/static/docs/swagger-initializer.js")

    assert script.status_code == 200
    for text in (page.text, script.text):
        assert re.findall(r"https?://|\"//", text) == []


def test_the_page_runs_no_inline_script_and_its_policy_allows_none(page):
    policy = policy_of(page)

    assert re.findall(r"<script(?![^>]*\bsrc=)", page.text) == []
    assert "script-src" not in policy  # so default-src holds for scripts
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "unsafe" not in page.headers["Content-Security-Policy"]


@pytest.fixture
def live_url(app):
    with served(app) as url:
        # The document's server, which "Try it out" calls: this one.
        app.config["APP_URL"] = url
        yield url


def rendered_text(browser):
    return browser.find_element(By.TAG_NAME, "body").text


@pytest.mark.timeout(90)  # Chromium starts in seconds; each wait below gives up at 20 s
def test_chromium_renders_every_operation_and_the_policy_blocks_nothing(client, browser, live_url):
    paths = list(client.get("/openapi.json").json["paths"])

    browser.get(f"{live_url}/docs")

    WebDriverWait(browser, 20).until(
        lambda driver: (
            "/appointments" in rendered_text(driver) and "/health" in rendered_text(driver)
        ),
        message="Swagger UI did not show /appointments and /health within 20 s",
    )
    shown = rendered_text(browser).splitlines()
    assert [path for path in paths if path not in shown] == []
    assert page_failures(browser) == []


@pytest.mark.timeout(90)  # Chromium starts in seconds; each wait below gives up at 20 s
def test_try_it_out_calls_this_server(browser, live_url):
    browser.get(f"{live_url}/docs")
    operation = WebDriverWait(browser, 20).until(
        lambda driver: driver.find_element(By.ID, "operations-probes-get_health"),
        message="Swagger UI did not show GET /health within 20 s",
    )

    def click(css):
        button = WebDriverWait(browser, 10).until(
            lambda driver: operation.find_element(By.CSS_SELECTOR, css),
            message=f"no {css} in GET /health within 10 s",
        )
        # Through the DOM: the page may still be scrolling, and a click at a point would
        # land on whatever passes under it.
        browser.execute_script("arguments[0].click()", button)

    click(".opblock-summary-control")
    click("button.try-out__btn")
    click("button.execute")

    status = WebDriverWait(browser, 20).until(
        lambda driver: operation.find_element(
            By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status"
        ),
        message="GET /health answered nothing in Swagger UI within 20 s",
    )
    assert status.text.strip() == "200"
    assert page_failures(browser) == []
