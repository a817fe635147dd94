"""A worker pointed at a Redis Cluster node without `REDIS_CLUSTER=true` says so and
stops, instead of starting and failing every command on a slot another node serves."""

import subprocess
import sys

import pytest

from gobarber.testing import PrivateCluster
from tests.test_config import ROOT, START_DEADLINE_S, process_environment


def a_node_without(cluster, key):
    owner = cluster.owner(PrivateCluster.slot(key))
    return next(node for node in cluster.nodes if node != owner)


@pytest.mark.timeout(START_DEADLINE_S + 30)
def test_a_worker_on_a_cluster_node_without_redis_cluster_names_the_setting(
    redis_cluster, database_url
):
    node = a_node_without(redis_cluster, "{gobarber}:mail:default")
    started = subprocess.run(
        [sys.executable, "-m", "consumers.worker"],
        cwd=ROOT,
        env=process_environment(
            DATABASE_URL=database_url, REDIS_URL=f"redis://{node}/0", STARTUP_WAIT="5"
        ),
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_S,
    )
    assert started.returncode != 0
    assert "Traceback" not in started.stderr
    last = started.stderr.strip().splitlines()[-1]
    assert last.startswith(f"gobarber: Redis at {node} is a Redis Cluster node"), last
    assert last.endswith("set REDIS_CLUSTER=true"), last
