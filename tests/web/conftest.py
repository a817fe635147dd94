"""Fixtures of the pages' tests."""

import pytest

from tests.browsers import ask_for, headless_chromium, served


@pytest.fixture
def browser():
    """A real headless Chromium at a desktop's size, asking for pt-BR, the shop's language
    (headless Chromium asks for en-US); quit after the test."""
    with headless_chromium() as driver:
        driver.set_window_size(1280, 900)
        ask_for(driver, "pt-BR,pt")
        yield driver


@pytest.fixture
def live_url(app):
    """The app served over real HTTP on a free port, in a thread; its base URL."""
    with served(app) as url:
        yield url
