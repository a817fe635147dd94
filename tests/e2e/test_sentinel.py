"""The mail pipeline through Sentinel: the web, a worker and the reaper find the master
the sentinel names, and keep going when it fails over to the replica in the middle of a
steady flow of cancels.

Replication is asynchronous: a write the old master took in the failover window (an
XADD, an XACK) may be gone on the new one. The outbox covers a lost XADD (the reaper
publishes the row again), and a lost XACK only hands out an entry whose row is `sent`
already; no worker dies here, so each appointment's mail arrives exactly once. The test
prints the errors each process survived and the error replies of both data nodes.
"""

import re
import signal
from collections import Counter

import pytest
import redis

from gobarber.testing import wait_until
from tests.flows import (
    Producer,
    all_sent,
    assert_survived,
    error_replies,
    logged,
    mails_per_appointment,
    process_settings,
    reset_stats,
)
from tests.mobile_client import Client
from tests.streams import deliveries

# Real processes and failovers: each test took 8-15 s here.
pytestmark = [pytest.mark.postgres_only, pytest.mark.timeout(180)]

SHARDS = 3


@pytest.fixture
def config_overrides(redis_sentinel):
    return {
        # With Sentinel, REDIS_URL gives only credentials and database; the master is the
        # one the sentinel names.
        "REDIS_URL": redis_sentinel.url,
        "REDIS_SENTINELS": redis_sentinel.sentinels,
        "REDIS_SENTINEL_SERVICE": redis_sentinel.service,
        "MAIL_STREAM_SHARDS": SHARDS,
    }


@pytest.fixture
def pipeline_env(pipeline_env, config_overrides):
    """The processes reach the same sentinel, service and shards as the test's app."""
    return {**pipeline_env, **process_settings(config_overrides)}


def data_nodes(sentinel):
    return [f"127.0.0.1:{sentinel.master_port}", f"127.0.0.1:{sentinel.replica_port}"]


def data_node(address):
    return redis.Redis.from_url(f"redis://{address}/0", decode_responses=True)


def node_errors(sentinel):
    """Each data node's error replies by kind (INFO errorstats)."""
    return {
        address: dict(error_replies([address], data_node)[0]) for address in data_nodes(sentinel)
    }


def all_sent_once(app, smtp_server, ids):
    """Wait until every row is `sent` and no stream owes anything; then each appointment
    must have had exactly one mail."""
    all_sent(app, smtp_server, timeout=90, what="every cancellation's mail")
    assert mails_per_appointment(app, smtp_server) == Counter(dict.fromkeys(ids, 1))


def report(processes, sentinel):
    """Print what the processes survived and what the failover discarded; return how many
    rows the reaper's relay published again."""
    print(
        f"error replies of the data nodes since just before the failover: {node_errors(sentinel)}"
    )
    for name in ("web", "worker-1", "reaper"):
        _, survived = logged(processes, name, width=90)
        for error, times in survived.items():
            print(f"  {name} survived {times}x {error}")
    passes = re.findall(
        r"(\d+) reclaimed, (\d+) retries due, (\d+) relayed", processes.log("reaper")
    )
    reclaimed, relayed = (sum(int(counts[i]) for counts in passes) for i in (0, 2))
    print(f"  reaper reclaimed {reclaimed} entries and relayed {relayed} rows")
    unsent = processes.log("worker-1").count("already sent; acknowledged unsent")
    print(f"  worker-1 met {unsent} entries of mails already sent, acknowledged unsent")
    # The new master refuses the old one a partial resync when the old one took writes
    # after the promotion: those writes are gone (its log names the offsets).
    for name in ("master", "replica"):
        for line in sentinel.servers.log(name).splitlines():
            if "Partial resynchronization not accepted" in line:
                print(f"  {name}: {line.split(' * ', 1)[-1]}")
    assert_survived(processes, "web", "worker-1", "reaper")
    return relayed


def test_a_sentinel_failover_mid_flow_loses_and_doubles_no_mail(
    app, processes, smtp_server, slot, redis_sentinel
):
    url = processes.web(workers=1)
    client = Client(url)
    _, token = client.person("Cliente", "cliente@barber.example.com")
    ids = client.book_many(80, token, slot)
    smtp_server.mailbox.delay = 0.02  # a batch takes a while: the failover finds one in hand
    processes.worker("worker-1")
    processes.reaper()
    producer = Producer(url, token, ids, pace=0.1, hold_at=50)
    producer.start()
    try:
        wait_until(
            lambda: len(smtp_server.messages) >= 10 or producer.error,
            timeout=60,
            what="10 mails before the failover",
        )
        assert producer.error is None, producer.error
        reset_stats(data_nodes(redis_sentinel), data_node)
        old = redis_sentinel.master_address()
        cancels_before = producer.done
        new = redis_sentinel.failover()
        cancels_after = producer.done
        mails_at_failover = len(smtp_server.messages)
    finally:
        producer.resume.set()
    producer.join(timeout=60)
    assert not producer.is_alive() and producer.error is None, producer.error
    assert producer.statuses == [200] * 80
    assert new != old and redis_sentinel.master_address() == new
    # The flow goes on through the new master: mails sent after the failover.
    wait_until(
        lambda: len(smtp_server.messages) >= mails_at_failover + 10,
        timeout=60,
        what="10 more mails after the failover",
    )

    all_sent_once(app, smtp_server, ids)
    print(
        f"\nsentinel: failover {old} -> {new}; cancels: {cancels_before} before it, "
        f"{cancels_after - cancels_before} while it ran, {80 - cancels_after} after; "
        f"shards {sorted({row.shard for row in deliveries(app)})}"
    )
    report(processes, redis_sentinel)


def test_events_the_failover_lost_before_any_worker_read_them_are_relayed(
    app, processes, smtp_server, slot, redis_sentinel
):
    """The worker stalls (SIGSTOP: a long pause, not a death) across the failover, so the
    entries the web added to the old master after the promotion are read by nobody
    before the old master drops them: the reaper's relay publishes their rows again."""
    url = processes.web(workers=1)
    client = Client(url)
    _, token = client.person("Cliente", "cliente@barber.example.com")
    ids = client.book_many(50, token, slot)
    processes.worker("worker-1")
    processes.reaper()
    # Ten cancels, then the rest (5 s of them) once the failover starts.
    producer = Producer(url, token, ids, pace=0.1, hold_at=10)
    producer.start()
    try:
        wait_until(
            lambda: (len(smtp_server.messages) >= 5 and producer.done == 10) or producer.error,
            timeout=60,
            what="5 mails and 10 cancels before the failover",
        )
        assert producer.error is None, producer.error
        reset_stats(data_nodes(redis_sentinel), data_node)
        processes.kill("worker-1", signal.SIGSTOP)
        try:
            old = redis_sentinel.master_address()
            producer.resume.set()
            new = redis_sentinel.failover()
            cancels_during = producer.done - 10
        finally:
            processes.kill("worker-1", signal.SIGCONT)
    finally:
        producer.resume.set()
    producer.join(timeout=60)
    assert not producer.is_alive() and producer.error is None, producer.error
    assert producer.statuses == [200] * 50
    assert new != old

    all_sent_once(app, smtp_server, ids)
    print(
        f"\nsentinel, worker stopped across the failover {old} -> {new}: "
        f"{cancels_during} cancels while it ran"
    )
    relayed = report(processes, redis_sentinel)
    assert relayed >= 1  # the failover lost entries no worker had read: the relay covered
