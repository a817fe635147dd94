"""The Redis topologies of tests/topologies.py, checked with the clients GoBarber would use:
keys spread over the cluster's masters, streams that follow a slot to another master, and a
sentinel failover that a `master_for` client follows."""

import pytest
import redis

TAGS = "abcdef"


def cluster_client(cluster):
    return redis.RedisCluster.from_url(cluster.url, decode_responses=True)


def other_master(cluster, slot):
    return next(address for address in cluster.nodes if address != cluster.owner(slot))


def keys_in_slot(cluster, address, slot):
    """The keys of `slot` that the node at `address` holds (no redirection involved)."""
    node = cluster.node_client(address, decode_responses=True)
    return set(node.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000))


@pytest.mark.timeout(60)
def test_hash_tags_spread_over_masters_and_owner_holds_the_key(redis_cluster):
    keys = [f"{{{tag}}}:mail" for tag in TAGS]
    assert len(redis_cluster.masters_of(keys)) >= 2

    client = cluster_client(redis_cluster)
    for key in keys:
        client.set(key, key)
        slot = redis_cluster.slot(key)
        node = redis_cluster.node_client(redis_cluster.owner(slot), decode_responses=True)
        assert node.execute_command("CLUSTER", "KEYSLOT", key) == slot
        assert node.get(key) == key  # the owner answers without a MOVED


@pytest.mark.timeout(60)
def test_cluster_client_reads_streams_of_every_tag_with_a_group(redis_cluster):
    client = cluster_client(redis_cluster)
    for tag in TAGS:
        stream = f"{{{tag}}}:mail"
        ids = [client.xadd(stream, {"n": str(n)}) for n in range(2)]
        client.xgroup_create(stream, "workers", id="0")
        [(name, entries)] = client.xreadgroup("workers", "w1", {stream: ">"}, count=10)
        assert name == stream
        assert [entry_id for entry_id, _ in entries] == ids
        assert client.xack(stream, "workers", *ids) == 2


@pytest.mark.timeout(60)
def test_migrate_slot_moves_a_stream_with_its_group_and_pending_list(redis_cluster):
    client = cluster_client(redis_cluster)  # made before the move: it learns of it by MOVED
    stream = "{mail}:stream"
    ids = [client.xadd(stream, {"n": str(n)}) for n in range(3)]
    client.xgroup_create(stream, "workers", id="0")
    client.xreadgroup("workers", "w1", {stream: ">"}, count=2)  # two pending, one new
    slot = redis_cluster.slot(stream)
    source, target = redis_cluster.owner(slot), other_master(redis_cluster, slot)

    redis_cluster.migrate_slot(slot, target)

    assert redis_cluster.owner(slot) == target
    assert keys_in_slot(redis_cluster, source, slot) == set()
    assert keys_in_slot(redis_cluster, target, slot) == {stream}
    assert client.xlen(stream) == 3
    pending = client.xpending_range(stream, "workers", min="-", max="+", count=10)
    assert [(entry["message_id"], entry["consumer"]) for entry in pending] == [
        (ids[0], "w1"),
        (ids[1], "w1"),
    ]
    [(_, entries)] = client.xreadgroup("workers", "w2", {stream: ">"}, count=10)
    assert [entry_id for entry_id, _ in entries] == [ids[2]]
    assert client.xack(stream, "workers", *ids) == 3


@pytest.mark.timeout(60)
def test_a_migration_in_steps_keeps_every_key_readable(redis_cluster):
    client = cluster_client(redis_cluster)
    keys = [f"{{steps}}:{n:02d}" for n in range(25)]
    for key in keys:
        client.set(key, key)
    slot = redis_cluster.slot(keys[0])
    source, target = redis_cluster.owner(slot), other_master(redis_cluster, slot)

    assert redis_cluster.begin_migration(slot, target) == source
    assert redis_cluster.owner(slot) == source  # nothing moved yet
    assert redis_cluster.move_keys(slot, target, batch=10) == 10

    moved = keys_in_slot(redis_cluster, target, slot)
    assert len(moved) == 10
    assert keys_in_slot(redis_cluster, source, slot) == set(keys) - moved
    # Single-key commands follow the ASK redirection to the keys already moved.
    assert [client.get(key) for key in keys] == keys

    assert redis_cluster.move_keys(slot, target, batch=10) == 10
    assert redis_cluster.move_keys(slot, target, batch=10) == 5
    assert redis_cluster.move_keys(slot, target, batch=10) == 0
    redis_cluster.finish_migration(slot, target)

    assert redis_cluster.owner(slot) == target
    assert keys_in_slot(redis_cluster, target, slot) == set(keys)
    assert client.mget(keys) == keys


@pytest.mark.timeout(60)
def test_sentinel_failover_swaps_master_and_replica_and_master_for_follows(redis_sentinel):
    host, port = redis_sentinel.sentinels.split(":")
    sentinel = redis.Sentinel([(host, int(port))], socket_timeout=5)
    master = sentinel.master_for(redis_sentinel.service, decode_responses=True)
    old = redis_sentinel.master_address()
    master.set("before", "1")  # a pooled connection to the old master
    # Replication is asynchronous: a failover right after a write may lose it (what
    # docs/design.md says the outbox covers). This test is about the failover, not that.
    assert master.wait(1, 5000) == 1

    new = redis_sentinel.failover()

    assert new != old
    assert redis_sentinel.master_address() == new
    assert redis_sentinel.url == f"redis://{new}/0"
    new_node = redis.Redis.from_url(redis_sentinel.url, decode_responses=True)
    old_node = redis.Redis.from_url(f"redis://{old}/0", decode_responses=True)
    assert new_node.info("replication")["role"] == "master"
    assert old_node.info("replication")["role"] == "slave"
    # The sentinel closed the old connection when it demoted the old master: the pool
    # reconnects through the sentinel, to the new master, and the write lands there.
    master.set("after", "2")
    assert new_node.get("before") == "1"
    assert new_node.get("after") == "2"
    with pytest.raises(redis.ReadOnlyError):
        old_node.set("after", "3")
