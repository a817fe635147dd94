"""`GET /health` writes where the mail streams live: a Redis that answers PING but cannot
take the pipeline's writes (a replica, a node that does not own a shard's slot) fails it."""

import uuid

import pytest
import redis

from gobarber import create_app
from gobarber.extensions import mail_queue
from gobarber.testing import PrivateCluster, PrivateRedis, wait_until
from tests.apps import make_config, private_app, running_app

OUTSIDE = {"REMOTE_ADDR": "203.0.113.9"}
HEALTH_TOKEN = "health-token-of-the-monitoring-host"
SHARDS = 4


@pytest.fixture
def primary(tmp_path):
    """A redis-server of the test's own, for another to replicate."""
    workdir = tmp_path / "primary"
    workdir.mkdir()
    server = PrivateRedis(workdir)
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(60)
def test_a_replica_fails_health_naming_readonly(database_url, tmp_path, primary):
    with private_app(database_url, tmp_path, HEALTH_TOKEN=HEALTH_TOKEN) as (app, own):
        client = app.test_client()
        assert client.get("/health").status_code == 200  # a primary, so far
        # What a failover leaves behind: the node the web still reaches is a replica now.
        node = redis.Redis.from_url(own.url, decode_responses=True)
        node.replicaof("127.0.0.1", primary.port)
        wait_until(
            lambda: node.info("replication")["role"] == "slave", timeout=10, what="a replica"
        )

        down = client.get("/health")  # from loopback

        assert down.status_code == 503
        assert down.json["failing"] == ["redis"]
        assert down.json["checks"]["database"]["ok"] is True
        redis_check = down.json["checks"]["redis"]
        assert redis_check["ok"] is False
        assert redis_check["error"].startswith("READONLY"), redis_check
        assert "read only replica" in redis_check["error"]
        outside = client.get("/health", environ_base=OUTSIDE)
        assert outside.status_code == 503
        assert outside.json["checks"]["redis"] == {"ok": False, "error": "unreachable"}
        with_token = client.get(
            "/health",
            environ_base=OUTSIDE,
            headers={"Authorization": f"Bearer {HEALTH_TOKEN}"},
        )
        assert with_token.json["checks"]["redis"]["error"].startswith("READONLY")
        node.close()


def shard_0_elsewhere(database_url, tmp_path, cluster, prefix):
    """(shard 0's probe key, its owner, a master that does not own it) for `prefix`."""
    keyed = create_app(make_config(database_url, tmp_path, MAIL_STREAM_PREFIX=prefix))
    key = mail_queue.get(keyed).probe_key(0)
    owner = cluster.owner(PrivateCluster.slot(key))
    return key, owner, next(address for address in cluster.nodes if address != owner)


@pytest.mark.timeout(120)  # a cluster of three redis-servers starts in about 2 s
def test_a_single_node_client_on_a_node_without_the_slot_fails_health_naming_moved(
    database_url, tmp_path, redis_cluster
):
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    _, owner, node = shard_0_elsewhere(database_url, tmp_path, redis_cluster, prefix)
    settings = {"MAIL_STREAM_PREFIX": prefix, "MAIL_STREAM_SHARDS": SHARDS}
    # That node answers PING: what /health asked before.
    assert redis_cluster.node_client(node).ping()

    with running_app(
        database_url, tmp_path, REDIS_URL=f"redis://{node}/0", REDIS_CLUSTER=False, **settings
    ) as app:
        down = app.test_client().get("/health")

    assert down.status_code == 503
    assert down.json["failing"] == ["redis"]
    error = down.json["checks"]["redis"]["error"]
    assert error.startswith("MOVED"), error
    assert error.endswith(owner), error  # where the slot lives, for a loopback caller


@pytest.mark.timeout(120)
def test_a_cluster_client_on_the_same_node_passes_health_and_writes_every_shard(
    database_url, tmp_path, redis_cluster
):
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    _, _, node = shard_0_elsewhere(database_url, tmp_path, redis_cluster, prefix)
    settings = {"MAIL_STREAM_PREFIX": prefix, "MAIL_STREAM_SHARDS": SHARDS}

    with running_app(
        database_url, tmp_path, REDIS_URL=f"redis://{node}/0", REDIS_CLUSTER=True, **settings
    ) as app:
        up = app.test_client().get("/health")
        keys = [mail_queue.get(app).probe_key(shard) for shard in range(SHARDS)]

    assert up.status_code == 200, up.json
    assert up.json["checks"]["redis"]["ok"] is True
    for key in keys:  # each on the master that owns its slot, as the streams are
        owner = redis_cluster.owner(PrivateCluster.slot(key))
        assert redis_cluster.node_client(owner).exists(key) == 1, (key, owner)
