"""The mail pipeline fixtures (worker, shop, keys...) for the probe and page tests too."""

from tests.consumers.conftest import (  # noqa: F401 - fixtures, found by name
    config_overrides,
    keys,
    reaper,
    redis_conn,
    shop,
    worker,
)
