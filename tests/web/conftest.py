"""The mail pipeline fixtures (worker, reaper, shop, keys) for the probe and admin page tests too."""

from tests.consumers.conftest import (  # noqa: F401 - fixtures, found by name
    config_overrides,
    keys,
    reaper,
    redis_conn,
    shop,
    worker,
)
