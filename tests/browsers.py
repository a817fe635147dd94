"""A real headless Chromium for the pages' tests, and the app served over HTTP for it."""

import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from werkzeug.serving import make_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1024",
)
# Where Chromium's log says a page went wrong: a Content-Security-Policy violation, an
# uncaught script error, a request that failed.
FAILURE_SOURCES = ("security", "javascript", "network")


@contextmanager
def headless_chromium():
    """Start Debian's chromium through its chromedriver, keeping the page's console log.

    Without them the test is skipped, except in CI, where it fails.
    """
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are required in CI (.ci/run installs them)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def page_failures(driver):
    """Return what the browser's log says went wrong on the page since it was last read."""
    return [entry for entry in driver.get_log("browser") if entry["source"] in FAILURE_SOURCES]


@contextmanager
def served(app):
    """Serve `app` over real HTTP on a free port, in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def ask_for(browser, language):
    """Make the browser ask for `language` (headless Chromium asks for en-US)."""
    agent = browser.execute_script("return navigator.userAgent")
    browser.execute_cdp_cmd(
        "Network.setUserAgentOverride", {"userAgent": agent, "acceptLanguage": language}
    )


def screenshot(browser, name):
    """Save the page as <GOBARBER_SCREENSHOTS>/<name>.png, when that is set (the README's
    pictures: `make screenshots`)."""
    folder = os.environ.get("GOBARBER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(folder) / f"{name}.png"))


def failures(browser, *expected_statuses):
    """The messages of what went wrong on the page since the log was last read, but for
    the refusals the test expects, by status."""
    return [
        entry["message"]
        for entry in page_failures(browser)
        if not any(f"status of {status} " in entry["message"] for status in expected_statuses)
    ]
