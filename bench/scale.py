"""Benchmark 7, scale: one Redis against a Redis Cluster, one shard against six, and what
batching the metrics' increments saves a mail in Redis commands.

Three topologies, each a System of its own with MAIL_STREAM_PREFIX=gobarber (the
default, so the shards sit where a default deployment's would): (a) one redis-server,
(b) a private 3-master Redis Cluster with MAIL_STREAM_SHARDS=1, (c) another such cluster
with MAIL_STREAM_SHARDS=6. The three are up together and the runs alternate between them
(1 worker on each, then 2, then 4; `--full` keeps the best of two runs of each), so
that what else the machine does falls on all three alike. On each, with 1, 2 and 4
workers:

- mails/s: N seeded cancellations (each row on its shard, each entry on its shard's
  stream), then that many real `python -m consumers.worker` processes sending to the
  SMTP sink (it answers at once); mails/s from the outbox's sent_at, as benchmark 3
  counts (`sent_rate`). `INFO commandstats` of every node, read after the seeding and
  after the last mail, gives the Redis calls the workers made and how the masters shared
  them.
- no-op entries/s: M entries spread over the shards' streams, then that many processes
  each running queue_overhead's NoopWorker (the real MailWorker.loop() and Deliverer, the
  handling of an entry reduced to "done"), started together once all are ready; timed
  from that start to the last acknowledgement of any of them.

Then, on one Redis with one worker in this process (MailWorker.loop() until every mail
is sent), Redis calls per mail from INFO commandstats (seeding excluded), with
batching undone (`gobarber.metrics.batched` replaced by `contextlib.nullcontext`) and
as it is.

`python bench/scale.py noop NAME` is the no-op worker process (the environment is the
System's).
"""

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from unittest import mock

import redis.connection
from mail_throughput import sent_rate
from report import figure, note, ratio, result
from sqlalchemy import text
from system import BENCH, ROOT, system

from consumers.loop import Stop
from consumers.worker import MailWorker
from gobarber import metrics
from gobarber.extensions import db
from gobarber.mail.queue import Priority, shard_for

PREFIX = "gobarber"
WORKERS = (1, 2, 4)
# (key, label, Redis Cluster masters (0: one redis-server), MAIL_STREAM_SHARDS)
TOPOLOGIES = (
    ("redis", "one Redis", 0, 1),
    ("cluster1", "cluster, 1 shard", 3, 1),
    ("cluster6", "cluster, 6 shards", 3, 6),
)
TOP_COMMANDS = 8


# ---- INFO commandstats -----------------------------------------------------------------


def command_calls(client):
    """{command: calls} as the server counts them now, INFO itself left out. Commands a
    Lua script or a MULTI runs are counted one by one, as Redis counts them."""
    stats = client.info("commandstats")
    return Counter(
        {
            name.removeprefix("cmdstat_"): int(stat["calls"])
            for name, stat in stats.items()
            if name != "cmdstat_info"
        }
    )


class CommandStats:
    """INFO commandstats of every node of a System, read before and after a run."""

    def __init__(self, sys_):
        self.clients = {address: sys_.node_client(address) for address in sys_.redis_nodes}
        self.snapshot()  # opens the connections: their handshakes come before any count

    def snapshot(self):
        return {address: command_calls(client) for address, client in self.clients.items()}

    def since(self, before):
        """{node: Counter of calls} served since the snapshot `before`."""
        after = self.snapshot()
        return {address: after[address] - before[address] for address in after}

    def close(self):
        for client in self.clients.values():
            client.close()


def total_calls(per_node):
    return sum(sum(calls.values()) for calls in per_node.values())


def shares(per_node):
    """Each node's share of the calls, in percent."""
    total = total_calls(per_node) or 1
    return {address: 100 * sum(calls.values()) / total for address, calls in per_node.items()}


class RoundTrips:
    """Requests this process writes to Redis (a pipeline or a MULTI is one), counted in
    redis-py's connection."""

    def __init__(self):
        self.count = 0

    @contextlib.contextmanager
    def counting(self):
        original = redis.connection.AbstractConnection.send_packed_command
        trips = self

        def send_packed_command(connection, command, check_health=True):
            trips.count += 1
            return original(connection, command, check_health)

        with mock.patch.object(
            redis.connection.AbstractConnection, "send_packed_command", send_packed_command
        ):
            yield self


# ---- data ---------------------------------------------------------------------------------


def clear_data(sys_):
    """Empty the tables a round seeds, so the next round starts from nothing."""
    with sys_.app.app_context():
        db.session.execute(
            text("TRUNCATE mail_deliveries, appointments, users RESTART IDENTITY CASCADE")
        )
        db.session.commit()


def fill(sys_, total):
    """XADD `total` no-op entries, each on its event's shard, 1,000 a round trip."""
    queue = sys_.queue
    queue.ensure_group()
    shards = len(queue.shards)
    fields = {"kind": "cancellation", "appointment_id": "1", "created_at": "0"}
    for start in range(0, total, 1000):
        pipe = queue.redis.pipeline(transaction=False)
        for _ in range(min(1000, total - start)):
            event_id = str(uuid.uuid4())
            stream = queue.stream_key(Priority.DEFAULT, shard_for(event_id, shards))
            pipe.xadd(stream, {"event_id": event_id, **fields})
        pipe.execute()


def placement(sys_):
    """{master address: [shards]} where the cluster keeps each shard's hash tag."""
    queue, placed = sys_.queue, {address: [] for address in sys_.redis_nodes}
    for shard in queue.shards:
        (master,) = sys_.redis.masters_of([queue.stream_key(Priority.DEFAULT, shard)])
        placed[master].append(shard)
    return placed


# ---- the rounds ------------------------------------------------------------------------


def mail_round(sys_, stats, total, workers, tag):
    """Seed `total` cancellations, send them with `workers` worker processes; return
    (mails/s, {node: calls served from the workers' start to the last mail})."""
    clear_data(sys_)
    sys_.cancellations(total)
    before = stats.snapshot()
    names = [f"{tag}-mail{workers}-{number + 1}" for number in range(workers)]
    for name in names:
        sys_.processes.worker(name)
    try:
        sys_.wait_sent(total, timeout=600)
        per_node = stats.since(before)
    finally:
        stop_processes(sys_, names)
    return sent_rate(sys_), per_node


def stop_processes(sys_, names):
    """SIGTERM the processes `names` (a warm stop) and wait for them."""
    for name in names:
        process, _ = sys_.processes.running[name]
        if process.poll() is None:
            process.terminate()
    for name in names:
        process, _ = sys_.processes.running[name]
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def noop_round(sys_, total, workers, tag):
    """Fill `total` entries, drain them with `workers` no-op worker processes started
    together; return entries/s from the start to the last acknowledgement."""
    fill(sys_, total)
    env = {**os.environ, **sys_.env}
    logs = sys_.workdir / "logs"
    logs.mkdir(exist_ok=True)
    children = []
    try:
        for number in range(workers):
            name = f"{tag}-noop{workers}-{number + 1}"
            with open(logs / f"{name}.log", "ab") as log:
                children.append(
                    subprocess.Popen(
                        [sys.executable, str(BENCH / "scale.py"), "noop", name],
                        cwd=ROOT,
                        env=env,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        text=True,
                    )
                )
        for child in children:
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a no-op worker did not start; see {logs}")
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for child in children:
            out, _ = child.communicate(timeout=600)
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    settled = sum(report["settled"] for report in reports)
    if settled != total:
        raise RuntimeError(f"the no-op workers settled {settled} of {total}")
    started = min(report["started"] for report in reports)
    ended = max(report["ended"] for report in reports)
    return total / (ended - started)


def noop_worker(name):
    """The no-op worker process: initialize, say "ready", wait for "go", drain the
    streams, print what it settled and when it started and last settled (epoch s)."""
    from queue_overhead import NoopWorker

    from gobarber import create_app

    app = create_app()
    worker = NoopWorker(app, stop=Stop(), name=name)
    worker.initialize()
    print("ready", flush=True)
    sys.stdin.readline()
    started = ended = time.time()
    while True:
        settled = worker.settled
        worker.loop()
        if worker.settled == settled:  # an empty read: the backlog was all there at start
            break
        ended = time.time()
    print(json.dumps({"settled": worker.settled, "started": started, "ended": ended}), flush=True)


def unbatched():
    """One round trip per increment again, as before `gobarber.metrics.batched`: the
    worker looks the name up at each batch (`with metrics.batched():`)."""
    return mock.patch.object(metrics, "batched", contextlib.nullcontext)


def commands_per_mail(sys_, stats, total, *, batched):
    """Seed `total` cancellations, send them with one MailWorker in this process; return
    (calls per mail, {command: calls per mail}, round trips per mail, mails/s)."""
    clear_data(sys_)
    sys_.cancellations(total)
    with contextlib.nullcontext() if batched else unbatched():
        worker = MailWorker(sys_.app, stop=Stop(), name=f"commands-{uuid.uuid4().hex[:6]}")
        deliver, sent = worker.deliverer.deliver, []

        def counting_deliver(entries, more=None):
            outcome = deliver(entries, more)
            sent.append(outcome.sent)
            return outcome

        worker.deliverer.deliver = counting_deliver
        before = stats.snapshot()
        with RoundTrips().counting() as trips:
            started = time.perf_counter()
            worker.initialize()
            while sum(sent) < total:
                worker.loop()
                if time.perf_counter() - started > 600:
                    raise RuntimeError(f"{sum(sent)} of {total} sent in 600s")
            seconds = time.perf_counter() - started
        per_node = stats.since(before)
    calls = sum(per_node.values(), Counter())
    breakdown = {name: count / total for name, count in calls.most_common() if count}
    return sum(calls.values()) / total, breakdown, trips.count / total, total / seconds


# ---- the benchmark ---------------------------------------------------------------------


def run(*, full, workdir):
    mails = 5_000 if full else 1_500
    noops = 100_000 if full else 20_000
    counted = 5_000 if full else 1_500
    repeats = 2 if full else 1
    res = result(
        "scale",
        "7. Scale: one Redis, a 3-master Redis Cluster with 1 and 6 shards",
        f"Three Systems up together (MAIL_STREAM_PREFIX={PREFIX}, batch 50); the runs "
        "alternate between them (1 worker on each, then 2, then 4) so that whatever else the "
        f"machine does falls on all three alike{'; best of 2 runs each' if repeats > 1 else ''}"
        f". Mails/s: {mails:,} seeded cancellations a run, real worker processes, mails/s "
        "from the outbox's sent_at span, SMTP sink answering at once. No-op: "
        f"{noops:,} entries, that many NoopWorker processes (real loop and Deliverer, "
        "handling = done) started together, timed to the last ack. Calls: INFO commandstats "
        "summed over every node, INFO itself left out, read after the seeding (the "
        "benchmark's own XADDs are not counted) and after the last mail; a worker's start "
        "is in, and commands run by a Lua script or inside MULTI count one by one.",
    )
    res["spread"], res["commandstats"] = {}, {}
    with contextlib.ExitStack() as stack:
        systems = {}
        for key, _, masters, shards in TOPOLOGIES:
            sys_ = stack.enter_context(
                system(
                    workdir / f"scale-{key}",
                    cluster_masters=masters,
                    MAIL_BATCH_SIZE=50,
                    MAIL_STREAM_PREFIX=PREFIX,
                    MAIL_STREAM_SHARDS=shards,
                )
            )
            stats = CommandStats(sys_)
            stack.callback(stats.close)
            systems[key] = (sys_, stats)
            if masters:
                res["spread"][key] = {"shards by master": placement(sys_)}
        mailed, drained = {}, {}
        for workers in WORKERS:
            for key, *_ in TOPOLOGIES:
                sys_, stats = systems[key]
                tries = [mail_round(sys_, stats, mails, workers, key) for _ in range(repeats)]
                mailed[key, workers] = max(tries, key=lambda tried: tried[0])
        for workers in WORKERS:
            for key, *_ in TOPOLOGIES:
                sys_, _ = systems[key]
                drained[key, workers] = max(
                    noop_round(sys_, noops, workers, key) for _ in range(repeats)
                )
        sys_, stats = systems["redis"]
        counted_calls = {
            name: commands_per_mail(sys_, stats, counted, batched=batched)
            for name, batched in (("before batching", False), ("after batching", True))
        }
    for key, label, *_ in TOPOLOGIES:
        for workers in WORKERS:
            rate, per_node = mailed[key, workers]
            how = f"{workers} x python -m consumers.worker; {total_calls(per_node) / mails:.1f} "
            how += "Redis calls a mail"
            if len(per_node) > 1:
                spread = shares(per_node)
                how += f", busiest master {max(spread.values()):.0f}% of them"
                res["spread"][key][f"{workers} workers"] = {
                    address: {
                        "share %": round(spread[address], 2),
                        "calls": sum(calls.values()),
                        "top commands": dict(calls.most_common(TOP_COMMANDS)),
                    }
                    for address, calls in per_node.items()
                }
            figure(res, f"{label}, {workers} worker(s): mails/s", rate, "mails/s", how)
        for workers in WORKERS:
            figure(
                res,
                f"{label}, {workers} worker(s): no-op entries/s",
                drained[key, workers],
                "entries/s",
                f"{workers} NoopWorker process(es), one backlog",
            )
    for name, (per_mail, breakdown, trips, rate) in counted_calls.items():
        res["commandstats"][name] = {
            "calls per mail": per_mail,
            "round trips per mail": trips,
            "per mail": breakdown,
        }
        how = (
            "gobarber.metrics.batched as it is"
            if name == "after batching"
            else "metrics.batched undone (replaced by contextlib.nullcontext)"
        )
        figure(
            res,
            f"one Redis, 1 in-process worker, {name}: Redis calls per mail",
            per_mail,
            "calls",
            f"{counted:,} mails, {how}; {rate:,.0f} mails/s",
        )
        figure(
            res,
            f"one Redis, 1 in-process worker, {name}: round trips per mail",
            trips,
            "round trips",
            "requests written by redis-py (a pipeline or MULTI is one)",
        )
    ratios(res, mailed, drained, counted_calls)
    return res


def ratios(res, mailed, drained, counted_calls):
    """The ratios, the spread over the masters and the per-command breakdowns."""
    sent = {run: rate for run, (rate, _) in mailed.items()}
    for unit, rates in (("mails/s", sent), ("entries/s", drained)):
        six, one = rates["cluster6", 4], rates["cluster1", 4]
        ratio(res, f"cluster 6 shards / cluster 1 shard, 4 workers ({unit})", six / one)
    for unit, rates in (("mails/s", sent), ("entries/s", drained)):
        cluster, single = rates["cluster1", 1], rates["redis", 1]
        ratio(res, f"cluster 1 shard / one Redis, 1 worker ({unit})", cluster / single)
    before, after = counted_calls["before batching"], counted_calls["after batching"]
    ratio(res, "Redis calls per mail: before / after batching", before[0] / after[0])
    ratio(res, "round trips per mail: before / after batching", before[2] / after[2])
    for key, label, masters, _ in TOPOLOGIES:
        if not masters:
            continue
        spread = res["spread"][key]
        placed = ", ".join(
            f"{address} {len(found)}" for address, found in spread["shards by master"].items()
        )
        share = ", ".join(
            f"{address} {node['share %']:.1f}%" for address, node in spread["4 workers"].items()
        )
        note(res, f"{label}, 4 workers, share of calls per master: {share} (shards: {placed})")
    for name, (_, breakdown, _, _) in counted_calls.items():
        top = list(breakdown.items())[:TOP_COMMANDS]
        listed = ", ".join(f"{command} {value:.2f}" for command, value in top)
        note(res, f"{name}, calls per mail by command (top {TOP_COMMANDS}): {listed}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["noop"]:
        noop_worker(sys.argv[2])
    else:
        sys.exit("usage: scale.py noop NAME (the benchmark runs from bench/run.py)")
