"""Fixtures of the pages' tests."""

import pytest

from tests.browsers import headless_chromium


@pytest.fixture
def browser():
    """A real headless Chromium, quit after the test."""
    with headless_chromium() as driver:
        yield driver
