"""These tests' app sends its mail to the test SMTP server."""

from tests.pipeline import pipeline_config as config_overrides  # noqa: F401 - a fixture
