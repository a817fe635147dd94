"""Fixtures of the pages' tests."""

import pytest

from tests.browsers import headless_chromium, served


@pytest.fixture
def browser():
    """A real headless Chromium, quit after the test."""
    with headless_chromium() as driver:
        yield driver


@pytest.fixture
def live_url(app):
    """The app served over real HTTP on a free port, in a thread; its base URL."""
    with served(app) as url:
        yield url
