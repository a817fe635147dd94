"""Fixtures of real Redis topologies: a Redis Cluster of three masters (`redis_cluster`) and
a master, its replica and a sentinel (`redis_sentinel`), as gobarber.testing builds them.

Registered in tests/conftest.py as a plugin. Both need the redis-server binary (the cluster
redis-cli too): without it the tests that ask for them are skipped, or fail when the
environment variable CI is set, so that a CI image missing it cannot pass silently.
"""

import os
import shutil

import pytest

from gobarber.testing import PrivateCluster, PrivateSentinel


def require(*binaries):
    """Skip (fail under CI) when one of `binaries` is not on PATH."""
    missing = [binary for binary in binaries if shutil.which(binary) is None]
    if not missing:
        return
    reason = f"needs {' and '.join(missing)} on PATH"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is not skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster_processes(tmp_path_factory):
    """The module's cluster, started by the first test that asks for `redis_cluster`
    (a cluster takes about 2 s to start: redis-cli waits, and a master serves no slot
    during its first 2 s). A list holding it, or nothing once a test broke it."""
    require("redis-server", "redis-cli")
    held = []
    yield held
    for cluster in held:
        cluster.stop()


@pytest.fixture
def redis_cluster(cluster_processes, tmp_path_factory):
    """A Redis Cluster of three masters on 127.0.0.1 with no key in it (PrivateCluster).

    The processes are shared by the tests of a module: every test starts with no key and
    no open migration, but a slot a test moved stays where it went, so ask `owner()` or
    `masters_of()` rather than assume the layout. A test that leaves the cluster unable to
    serve every slot gets it replaced by a fresh one for the next test.
    """
    if not cluster_processes:
        cluster = PrivateCluster(tmp_path_factory.mktemp("cluster"))
        cluster.start()
        cluster_processes.append(cluster)
    cluster = cluster_processes[0]
    yield cluster
    try:
        cluster.reset()
    except Exception:
        cluster.stop()
        cluster_processes.clear()


@pytest.fixture
def redis_sentinel(tmp_path):
    """A master, its replica and one sentinel on 127.0.0.1 (PrivateSentinel), this test's
    own: starting them takes a fraction of a second, and `failover()` changes who is master."""
    require("redis-server")
    sentinel = PrivateSentinel(tmp_path / "sentinel")
    sentinel.start()
    yield sentinel
    sentinel.stop()
