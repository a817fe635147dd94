"""A shard's hash slot moves from one master to another, key by key, while cancels flow and
a worker and the reaper run as real processes: redirections (ASK, TRYAGAIN, MOVED, a
blocked read UNBLOCKED) cost delay, never a process, a mail or a second copy of one.

The test prints what the processes logged and what the nodes answered (their INFO
errorstats), so a run says which redirections were actually exercised. It also prints how
many mails went out between two moves without asserting it: while the slot is migrating,
`release_due`'s script over the shard's streams and their (absent) due sets answers
TRYAGAIN, redis-py gives up ("ClusterError: TTL exhausted."), and the consumers' passes,
which span every shard, fail until the slot has moved.
"""

import re
import threading
import time
from collections import Counter

import pytest

from gobarber.extensions import mail_queue
from gobarber.testing import wait_until
from tests.mobile_client import Client
from tests.streams import deliveries, owed

# Real processes on a private cluster: the test took 35-55 s here.
pytestmark = [pytest.mark.postgres_only, pytest.mark.timeout(180)]

SHARDS = 6
# Redirections the processes may name in what they log (redis-py follows ASK and MOVED
# itself, and says "TTL exhausted" when it gave up on them or on TRYAGAIN).
LOGGED = {
    "TRYAGAIN": r"TRYAGAIN",
    "ASK": r"\bASK\b",
    "MOVED": r"\bMOVED\b",
    "UNBLOCKED": r"UNBLOCKED",
    "CROSSSLOT": r"CROSSSLOT",
    "CLUSTERDOWN": r"CLUSTERDOWN",
    "TTL exhausted": r"TTL exhausted",
    "retrying in": r"retrying in",
    "Traceback": r"Traceback",
}
# consumers/loop.py's line for an error it survived: "name: Type: message; retrying in 1.0s"
SURVIVED = re.compile(r"(\w+(?:Error|Exception)): (.*?); retrying in ")


def spread_prefix(cluster, shards=SHARDS, stem="gobarber-migration"):
    """The first of `stem-0`, `stem-1`... whose shards' hash tags land on every master (on
    two at least, should no candidate reach all): the same prefix on every run."""
    best, best_masters = None, 0
    for number in range(200):
        prefix = f"{stem}-{number}"
        tags = ["{" + prefix + (f":{shard}" if shard else "") + "}" for shard in range(shards)]
        masters = len(cluster.masters_of(tags))
        if masters == len(cluster.nodes):
            return prefix
        if masters > best_masters:
            best, best_masters = prefix, masters
    assert best_masters >= 2, "no candidate prefix spreads the shards over two masters"
    return best


@pytest.fixture
def config_overrides(redis_cluster):
    return {
        "REDIS_URL": redis_cluster.url,
        "REDIS_CLUSTER": True,
        "MAIL_STREAM_SHARDS": SHARDS,
        "MAIL_STREAM_PREFIX": spread_prefix(redis_cluster),
    }


@pytest.fixture
def pipeline_env(pipeline_env, config_overrides):
    """The processes reach the same cluster, prefix and shards as the test's app."""
    return {
        **pipeline_env,
        "REDIS_URL": config_overrides["REDIS_URL"],
        "REDIS_CLUSTER": "true",
        "MAIL_STREAM_SHARDS": SHARDS,
        "MAIL_STREAM_PREFIX": config_overrides["MAIL_STREAM_PREFIX"],
    }


class Producer(threading.Thread):
    """Cancel `ids` over HTTP one after another, `pace` seconds apart; the ids from
    `hold_at` on wait for `resume` to be set. Its own HTTP session: requests' is not
    shared between threads."""

    def __init__(self, url, token, ids, *, pace, hold_at):
        super().__init__(daemon=True)
        self.client, self.token, self.ids = Client(url), token, ids
        self.pace, self.hold_at = pace, hold_at
        self.resume, self.quit = threading.Event(), threading.Event()
        self.statuses, self.error = [], None

    @property
    def done(self):
        return len(self.statuses)

    def run(self):
        try:
            for number, appointment_id in enumerate(self.ids):
                if number == self.hold_at:
                    self.resume.wait(120)
                if self.quit.is_set():
                    return
                answer = self.client.call("DELETE", f"/appointments/{appointment_id}", self.token)
                self.statuses.append(answer.status_code)
                self.quit.wait(self.pace)  # a steady flow, not a wait for a condition
        except Exception as error:  # reported by the test, which fails on it
            self.error = error


def mails_per_appointment(app, smtp_server):
    """How many mails the SMTP server received for each appointment (by Message-ID)."""
    appointment_of = {
        f"<{row.event_id}@gobarber.com>": row.appointment_id for row in deliveries(app)
    }
    return Counter(appointment_of.get(message["Message-ID"]) for message in smtp_server.messages)


def mails_within(smtp_server, more, *, within):
    """Wait until `more` mails arrive or `within` seconds pass; return how many arrived."""
    seen, deadline = len(smtp_server.messages), time.monotonic() + within
    wait_until(
        lambda: len(smtp_server.messages) >= seen + more or time.monotonic() > deadline,
        timeout=within + 5,
        what=f"{more} more mails or {within}s",
    )
    return len(smtp_server.messages) - seen


def error_replies(cluster):
    """Error replies by kind (INFO errorstats) summed over the nodes, the ASKING calls,
    and the commands refused (a redirection, TRYAGAIN) or failed, by command."""
    totals, refused = Counter(), Counter()
    for address in cluster.nodes:
        node = cluster.node_client(address, decode_responses=True)
        for name, stats in node.info("errorstats").items():
            totals[name.removeprefix("errorstat_")] += stats["count"]
        for name, stats in node.info("commandstats").items():
            command = name.removeprefix("cmdstat_")
            if command == "asking":
                totals["ASKING (calls)"] += stats["calls"]
            if stats.get("rejected_calls", 0) + stats.get("failed_calls", 0):
                refused[command] += stats.get("rejected_calls", 0) + stats.get("failed_calls", 0)
        node.close()
    return totals, refused


def reset_stats(cluster):
    for address in cluster.nodes:
        node = cluster.node_client(address)
        node.config_resetstat()
        node.close()


def logged(processes, name):
    """How often the process `name` logged each of LOGGED, and the errors it survived."""
    text = processes.log(name)
    counts = {what: len(re.findall(pattern, text)) for what, pattern in LOGGED.items()}
    survived = Counter(f"{kind}: {message[:80]}" for kind, message in SURVIVED.findall(text))
    return counts, survived


def test_a_shard_slot_migrated_in_steps_while_cancels_flow(
    app, processes, smtp_server, slot, redis_cluster
):
    queue = mail_queue.get(app)
    shard = 0  # its tag also holds the heartbeats and the metrics: the busiest slot
    stream = queue.stream_key("default", shard)
    moving = redis_cluster.slot(stream)
    source = redis_cluster.owner(moving)
    target = next(address for address in redis_cluster.nodes if address != source)
    every_stream = [queue.stream_key("default", each) for each in range(SHARDS)]
    assert len(redis_cluster.masters_of(every_stream)) >= 2

    url = processes.web(workers=1)
    client = Client(url)
    _, token = client.person("Cliente", "cliente@barber.example.com")
    ids = client.book_many(100, token, slot)
    # A batch of ten takes half a second: key moves land while one is in hand.
    smtp_server.mailbox.delay = 0.05
    processes.worker("worker-1")
    processes.reaper()
    producer = Producer(url, token, ids, pace=0.1, hold_at=70)
    producer.start()
    try:
        wait_until(
            lambda: len(smtp_server.messages) >= 10 or producer.error,
            timeout=60,
            what="10 mails before the migration",
        )
        assert producer.error is None, producer.error
        source_node = redis_cluster.node_client(source, decode_responses=True)
        keys_before = source_node.execute_command("CLUSTER", "GETKEYSINSLOT", moving, 1000)
        source_node.close()
        reset_stats(redis_cluster)

        assert redis_cluster.begin_migration(moving, target) == source
        cancels_at_begin, steps = producer.done, []
        while True:
            # Let the worker settle a few more mails (or try for 3 s) between two moves.
            progress = mails_within(smtp_server, 3, within=3)
            moved = redis_cluster.move_keys(moving, target, batch=1)
            if not moved:
                break
            steps.append(progress)
        redis_cluster.finish_migration(moving, target)
        cancels_at_finish = producer.done
        replies, refused = error_replies(redis_cluster)
    finally:
        producer.resume.set()
    producer.join(timeout=60)
    assert not producer.is_alive() and producer.error is None, producer.error

    assert producer.statuses == [200] * 100
    wanted = {f"<{row.event_id}@gobarber.com>" for row in deliveries(app)}
    wait_until(
        lambda: wanted <= {message["Message-ID"] for message in smtp_server.messages},
        timeout=90,
        what="every cancellation's mail",
    )
    wait_until(
        lambda: {row.status for row in deliveries(app)} == {"sent"},
        timeout=30,
        what="every row sent",
    )
    wait_until(lambda: owed(app) == 0, timeout=30, what="no pending entries")

    reports = {name: logged(processes, name) for name in ("web", "worker-1", "reaper")}
    print(
        f"\nslot {moving} (shard {shard}) moved {source} -> {target} in {len(steps)} steps "
        f"of one key ({len(keys_before)} keys: {sorted(keys_before)})"
        f"\ncancels: {cancels_at_begin} before the migration, "
        f"{cancels_at_finish - cancels_at_begin} during it, {100 - cancels_at_finish} after"
        f"\nmails settled between two moves: {steps}"
        f"\nerror replies of the nodes during the migration: {dict(replies)}"
        f"\ncommands refused or failed, by command: {dict(refused)}"
    )
    for name, (counts, survived) in reports.items():
        print(f"{name} logged: { {what: n for what, n in counts.items() if n} }")
        for error, times in survived.items():
            print(f"  {name} survived {times}x {error}")
    unsent = processes.log("worker-1").count("already sent; acknowledged unsent")
    print(f"worker-1 met {unsent} entries of mails already sent, acknowledged unsent")

    assert redis_cluster.owner(moving) == target
    assert redis_cluster.masters_of([stream]) == {target}
    assert cancels_at_finish > cancels_at_begin  # cancels flowed while the slot moved
    counts = mails_per_appointment(app, smtp_server)
    assert counts == Counter(dict.fromkeys(ids, 1))  # no mail lost, none sent twice
    for name in ("web", "worker-1", "reaper"):
        processes.assert_alive(name)
        assert reports[name][0]["Traceback"] == 0, processes.log(name)
