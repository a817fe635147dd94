"""A worker batch's counts cost one round trip, as Redis itself counts its commands.

The app here talks to a redis-server of the test's own, so `INFO commandstats` counts
this test's commands only: the cancels' (through the API), then the worker's.
"""

import logging
import math
from datetime import timedelta

import pytest
from flask import request_finished
from sqlalchemy import update

from gobarber import metrics
from gobarber.extensions import db
from gobarber.models import MailDelivery
from gobarber.shop_time import now
from gobarber.testing import wait_until
from tests.apps import clean_database, private_app
from tests.scrape import metric_values
from tests.streams import abandon, owed, run_until_settled

MAILS = 40
# What a sent mail counts (gobarber.mail.metrics.count_transition): `sent|<kind>`, its
# latency bucket and the latency sum. The cancels below are an hour old when they go,
# so every latency is in the last bucket and a batch counts these three fields.
FIELDS_PER_BATCH = 3
METRIC_COMMANDS = ("hincrby", "hincrbyfloat")


@pytest.fixture
def private(database_url, tmp_path, pipeline_config, config_overrides):
    """(app, PrivateRedis): the pipeline's settings, a redis-server of this test's own."""
    settings = {**pipeline_config, **config_overrides}
    with private_app(database_url, tmp_path, **settings) as (app, server):
        clean_database(app)
        try:
            yield app, server
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


@pytest.fixture
def app(private):
    # Every pipeline fixture (shop, worker, redis_conn, queue) uses this app.
    return private[0]


def command_calls(client):
    """{command: calls} as the server counts them, `INFO` itself left out."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(stat["calls"])
        for name, stat in stats.items()
        if name != "cmdstat_info"
    }


def commands_since(before, after):
    """The calls of each command between two `command_calls` readings."""
    return {
        name: calls - before.get(name, 0)
        for name, calls in after.items()
        if calls > before.get(name, 0)
    }


@pytest.fixture
def served(app):
    """The status of every request the app serves from now on."""
    statuses = []

    def count(sender, response, **extra):
        statuses.append(response.status_code)

    with request_finished.connected_to(count, app):
        yield statuses


def cancel(app, shop, served, count):
    """Queue `count` cancellation mails through the API; return once the requests' own
    counts have reached Redis, so that no HINCRBY but the pipeline's comes after."""
    for _ in range(count):
        shop.cancellation()

    def http_counted():
        with app.app_context():
            metrics.publish_pending()
            return sum(int(value) for value in metrics.read("http").values())

    wait_until(
        lambda: http_counted() == len(served),
        timeout=10,
        what=f"the {len(served)} HTTP requests to be counted in Redis",
    )


@pytest.fixture
def hour_old_cancellations(app, served, shop):
    """MAILS cancellation mails queued, created an hour ago."""
    cancel(app, shop, served, MAILS)
    with app.app_context():
        db.session.execute(update(MailDelivery).values(created_at=now() - timedelta(hours=1)))
        db.session.commit()


def send_all(worker, redis_conn, smtp_server):
    """Run worker passes until every mail is sent; return (passes, Redis commands by name)."""
    passes = []

    def all_sent():
        passes.append(1)
        return len(smtp_server.messages) == MAILS

    before = command_calls(redis_conn)
    run_until_settled(worker, all_sent, what=f"{MAILS} mails sent", timeout=30)
    return len(passes) - 1, commands_since(before, command_calls(redis_conn))


@pytest.mark.timeout(60)
def test_a_batch_counts_its_mails_in_one_round_trip(
    app, hour_old_cancellations, worker, redis_conn, smtp_server
):
    batch = app.config["MAIL_BATCH_SIZE"]
    batches = math.ceil(MAILS / batch)

    passes, commands = send_all(worker, redis_conn, smtp_server)

    counting = sum(commands.get(name, 0) for name in METRIC_COMMANDS)
    total = sum(commands.values())
    stream = total - counting
    print(
        f"\n{MAILS} mails in {passes} passes: {total / MAILS:.2f} Redis commands per mail "
        f"({counting / MAILS:.2f} counting, {stream / MAILS:.2f} the stream protocol); "
        f"by command: {dict(sorted(commands.items()))}"
    )
    assert owed(app, redis_conn) == 0
    # One HINCRBY/HINCRBYFLOAT per distinct field a batch counts, however many mails it
    # held (one per field per mail would be MAILS * FIELDS_PER_BATCH = 120).
    assert counting <= (FIELDS_PER_BATCH + 1) * batches, commands
    # Below 1.0 beyond the stream protocol's own commands: counting mail by mail costs
    # at least one command per mail (three here), counting by batch a few per batch.
    assert total / MAILS < 1.0 + stream / MAILS, commands
    # INFO counts the commands a script runs too. The stream protocol needs, per mail,
    # its send lock's SET (inside the lock script); per batch of 10, the read (EVALSHA
    # and up to 2 XREADGROUP inside), the locks' EVALSHA and the settle (MULTI, XACK,
    # XDEL, DEL of the locks, EXEC): 9, so 1.9 per mail; the counts, 3 per batch, make
    # 2.2. On top, once per run or per second rather than per mail: the heartbeat (5),
    # script loads (3), the re-read of the worker's own pending entries, the due check
    # (an EVALSHA and 4 commands inside, every second) and the look for urgent mail
    # (every 0.5 s of a batch). 1.3 per mail (52 commands) leaves room for a few
    # seconds of those on a slow machine. Counting every mail on its own adds 2.7.
    assert total / MAILS < 3.5, commands


@pytest.mark.timeout(60)
def test_metrics_show_every_mail_of_the_batches(
    app, client, hour_old_cancellations, worker, redis_conn, smtp_server
):
    send_all(worker, redis_conn, smtp_server)

    values = metric_values(client)
    kind = (("kind", "cancellation"),)
    assert values[("gobarber_mail_queued_total", kind)] == MAILS
    assert values[("gobarber_mail_sent_total", kind)] == MAILS
    assert values[("gobarber_mail_failed_total", kind)] == 0
    assert values[("gobarber_mail_cancel_to_accepted_seconds_count", kind)] == MAILS
    histogram = "gobarber_mail_cancel_to_accepted_seconds_bucket"
    assert values[(histogram, (("kind", "cancellation"), ("le", "300.0")))] == 0
    assert values[(histogram, (("kind", "cancellation"), ("le", "+Inf")))] == MAILS
    assert values[("gobarber_mail_cancel_to_accepted_seconds_sum", kind)] >= MAILS * 3600


@pytest.mark.parametrize("config_overrides", [{"MAIL_MAX_ATTEMPTS": 1}])
@pytest.mark.timeout(60)
def test_a_reaper_batch_counts_its_dead_letters_in_one_round_trip(
    app, served, shop, client, reaper, redis_conn, queue
):
    cancel(app, shop, served, 10)
    # With one attempt allowed, every entry a dead worker left is on its last delivery.
    abandon(queue)
    before = command_calls(redis_conn)

    assert reaper.reclaim() == 10

    commands = commands_since(before, command_calls(redis_conn))
    assert redis_conn.xlen(queue.dead_key) == 10
    assert commands.get("hincrby") == 1, commands  # `dead|cancellation`, once for all ten
    values = metric_values(client)
    assert values[("gobarber_mail_dead_total", (("kind", "cancellation"),))] == 10


@pytest.mark.timeout(60)
def test_counts_are_summed_per_field_and_sent_even_when_the_batch_fails(app, redis_conn):
    with app.app_context():
        before = command_calls(redis_conn)
        with pytest.raises(RuntimeError), metrics.batched():
            for _ in range(5):
                metrics.increment({("mail", "sent|cancellation"): 1, ("latency", "x|sum"): 0.5})
            with metrics.batched():  # nested: adds to the outer batch
                metrics.increment({("mail", "sent|cancellation"): 1})
            assert metrics.read("mail") == {}  # nothing sent before the batch ends
            raise RuntimeError("a bug in the middle of a batch")
        commands = commands_since(before, command_calls(redis_conn))

        assert metrics.read("mail") == {"sent|cancellation": "6"}
        assert float(metrics.read("latency")["x|sum"]) == 2.5
    assert (commands.get("hincrby"), commands.get("hincrbyfloat")) == (1, 1), commands


@pytest.mark.timeout(60)
def test_outside_a_batch_a_count_goes_at_once(app):
    with app.app_context():
        metrics.increment({("mail", "sent|cancellation"): 2})
        assert metrics.read("mail") == {"sent|cancellation": "2"}


@pytest.mark.timeout(60)
def test_a_redis_down_costs_a_batch_its_counts_not_an_error(private, caplog):
    app, server = private
    caplog.set_level(logging.DEBUG, logger="gobarber.metrics")
    server.stop()

    with app.app_context(), metrics.batched():
        metrics.increment({("mail", "sent|cancellation"): 1})
        metrics.increment({("mail", "dead|cancellation"): 1})

    lost = [r.getMessage() for r in caplog.records if "not counted" in r.getMessage()]
    assert len(lost) == 1, lost  # one line for the batch
    assert f"127.0.0.1:{server.port}" in lost[0]
