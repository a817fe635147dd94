"""The three ways to Redis (gobarber/redis_connection.py): one Redis, a Redis Cluster, the
primary Sentinel names.

Their settings and the refusals of settings that cannot work; starting and migrating with
no Redis at all; the start-up check naming what it tried; then, on real servers, what the
API does with Redis outside the mail pipeline (the sign-in throttle, the admin session, a
cancel's mail event), and a signed-in call in every mode with a password and with TLS.
What the app wrote is read back with a plain client on the server that holds it, never
through the app's own client.
"""

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from gobarber import config as settings
from gobarber import create_app
from gobarber.config import ConfigError
from gobarber.extensions import db, mail_queue
from gobarber.models import MailDelivery, User
from gobarber.readiness import ServiceUnreachable, check_redis, wait_for_services
from gobarber.testing import (
    PrivateCluster,
    PrivateRedis,
    PrivateSentinel,
    free_port,
    wait_until,
)
from tests.apps import make_config, running_app, shop_slot
from tests.forms import admin_sign_in
from tests.people import Api
from tests.pipeline import Shop
from tests.topologies import require

ROOT = Path(__file__).resolve().parent.parent
FLASK = Path(sys.executable).parent / "flask"
# Every variable config.py reads, taken from its source (as tests/test_config.py does).
VARIABLES = sorted(
    set(re.findall(r'\(\s*"([A-Z][A-Z0-9_]+)"', Path(settings.__file__).read_text()))
)
# Characters a URL must quote, in every password: the app reads it back from REDIS_URL.
PASSWORD = "pass:w/rd@1"
SENTINEL_PASSWORD = "sentinel-only"
TOO_MANY = {"error": "Too many attempts, try again later"}


@pytest.fixture
def environment(monkeypatch):
    """An environment without any of the app's variables; tests set the ones they need."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "development")
    return monkeypatch


def sign_in(client, email, password):
    return client.post("/sessions", json={"email": email, "password": password})


def checked():
    """Build and validate the config of the current environment."""
    config = settings.from_environment()
    settings.validate(config)
    return config


def refusal(environment, **variables):
    """The one-line ConfigError the environment plus `variables` is refused with."""
    for name, value in variables.items():
        environment.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        checked()
    message = str(refused.value)
    assert "\n" not in message
    return message


# ---- settings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "addresses"),
    [
        ("10.0.0.1:26380,10.0.0.2:26381", [("10.0.0.1", 26380), ("10.0.0.2", 26381)]),
        ("sentinel-a, sentinel-b:5000", [("sentinel-a", 26379), ("sentinel-b", 5000)]),
        (" s1:1 ,, ", [("s1", 1)]),
        ("[::1]:26379", [("::1", 26379)]),
    ],
    ids=["two", "default-port", "spaces-and-empties", "ipv6"],
)
def test_sentinels_are_read_as_host_and_port(environment, raw, addresses):
    environment.setenv("REDIS_SENTINELS", raw)
    config = checked()
    assert config["REDIS_SENTINELS"] == addresses
    assert config["REDIS_SENTINEL_SERVICE"] == "gobarber"


@pytest.mark.parametrize("entry", ["s1:", ":26379", "s1:port", "s1:26379:x", "s1:-1"])
def test_a_bad_sentinel_is_refused_in_one_line(environment, entry):
    message = refusal(environment, REDIS_SENTINELS=f"s0:26379,{entry}")
    assert message == f"REDIS_SENTINELS has {entry!r}; use host:port,host:port"


def test_no_sentinels_is_one_redis(environment):
    config = checked()
    assert config["REDIS_SENTINELS"] == []
    assert config["REDIS_CLUSTER"] is False


@pytest.mark.parametrize(
    ("shards", "raw", "read"),
    [
        ("8", "0-3,6", (0, 1, 2, 3, 6)),
        ("8", " 6 , 0-1,1 ", (0, 1, 6)),
        ("4", "", (0, 1, 2, 3)),
        ("1", None, (0,)),
    ],
    ids=["ranges", "spaces-repeats", "empty-is-all", "unset-is-all"],
)
def test_mail_shards_name_the_shards_read(environment, shards, raw, read):
    environment.setenv("MAIL_STREAM_SHARDS", shards)
    if raw is not None:
        environment.setenv("MAIL_SHARDS", raw)
    assert checked()["MAIL_SHARDS"] == read


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("4", "MAIL_SHARDS names shard 4; with MAIL_STREAM_SHARDS=4 the shards are 0-3"),
        ("2-9", "MAIL_SHARDS names shard 4; with MAIL_STREAM_SHARDS=4 the shards are 0-3"),
        ("3-1", "MAIL_SHARDS names shard (none); with MAIL_STREAM_SHARDS=4 the shards are 0-3"),
        ("one", "MAIL_SHARDS has 'one'; write e.g. 0-3,6"),
        ("0,,1", "MAIL_SHARDS has ''; write e.g. 0-3,6"),
        ("-1", "MAIL_SHARDS has '-1'; write e.g. 0-3,6"),
        ("0-x", "MAIL_SHARDS has '0-x'; write e.g. 0-3,6"),
    ],
    ids=["outside", "range-outside", "empty-range", "word", "empty-item", "negative", "junk"],
)
def test_mail_shards_that_cannot_be_read_are_refused_in_one_line(environment, raw, message):
    assert refusal(environment, MAIL_STREAM_SHARDS="4", MAIL_SHARDS=raw) == message


def test_a_cluster_with_a_database_other_than_0_is_refused(environment):
    message = refusal(environment, REDIS_CLUSTER="true", REDIS_URL="redis://node-1:7000/3")
    assert message == "a Redis Cluster has database 0 only; end REDIS_URL with /0"


def test_a_cluster_on_database_0_is_accepted(environment):
    environment.setenv("REDIS_CLUSTER", "true")
    environment.setenv("REDIS_URL", "redis://node-1:7000/0")
    assert checked()["REDIS_CLUSTER"] is True


def test_a_cluster_and_sentinels_together_are_refused(environment):
    message = refusal(environment, REDIS_CLUSTER="true", REDIS_SENTINELS="s1:26379")
    assert message == "REDIS_CLUSTER and REDIS_SENTINELS exclude each other; set one"


# ---- no Redis needed to start or migrate ---------------------------------------------


@contextmanager
def tripwire():
    """A port that accepts connections and never answers; yields a function telling
    whether anything connected so far."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)

        def touched():
            try:
                connection, _ = listener.accept()
            except BlockingIOError:
                return False
            connection.close()
            return True

        yield listener.getsockname()[1], touched


def nowhere(mode, port):
    """REDIS_* settings of `mode` whose every address is 127.0.0.1:`port`."""
    if mode == "cluster":
        return {"REDIS_CLUSTER": True, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    return {
        "REDIS_SENTINELS": f"127.0.0.1:{port},127.0.0.1:{port}",
        "REDIS_SENTINEL_SERVICE": "gobarber",
        "REDIS_URL": f"redis://:secret@127.0.0.1:{port}/0",
    }


def as_environment(config):
    """Settings as environment variables say them."""
    return {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in config.items()
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["cluster", "sentinel"])
def test_flask_db_upgrade_needs_no_redis(tmp_path, mode):
    database = tmp_path / "release.db"
    with tripwire() as (port, touched):
        env = {name: value for name, value in os.environ.items() if name not in VARIABLES}
        env.update(
            APP_ENV="production",
            SECRET_KEY="release-secret-long-enough-for-hs256-signing",
            DATABASE_URL=f"sqlite:///{database}",
            RATE_LIMITS="on",  # the limiter's storage is built too
            UPLOAD_FOLDER=str(tmp_path / "uploads"),
            **as_environment(nowhere(mode, port)),
        )
        # The Procfile's release command, as a process of its own.
        released = subprocess.run(
            [str(FLASK), "db", "upgrade"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert released.returncode == 0, released.stderr
        assert "Traceback" not in released.stderr
        assert not touched(), "flask db upgrade connected to Redis"
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"alembic_version", "users", "mail_deliveries"} <= tables


@pytest.mark.parametrize("mode", ["cluster", "sentinel"])
def test_create_app_touches_no_redis(tmp_path, mode):
    with tripwire() as (port, touched):
        database = f"sqlite:///{tmp_path / 'app.db'}"
        # The throttles on: the limiter's storage and client are built too.
        app = create_app(make_config(database, tmp_path, RATE_LIMITS=True, **nowhere(mode, port)))
        assert app.config["RATELIMIT_ENABLED"]
        assert not touched(), "create_app connected to Redis"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["cluster", "sentinel"])
def test_with_redis_down_the_api_answers_at_once_and_throttles_in_memory(
    database_url, tmp_path, mode, caplog
):
    with running_app(database_url, tmp_path, RATE_LIMITS=True, **nowhere(mode, free_port())) as app:
        client = app.test_client()
        started = time.monotonic()
        person = Api(client).person()
        answers = [sign_in(client, person.email, "wrong").status_code for _ in range(6)]
        elapsed = time.monotonic() - started

    assert answers == [401] * 5 + [429]
    # Every request asked the limiter's Redis first: none may wait on it.
    assert elapsed < 2.0, f"8 requests took {elapsed:.2f}s with Redis down"
    limiter_logs = [r for r in caplog.records if r.name == "flask-limiter"]
    assert [r.levelname for r in limiter_logs] == ["WARNING"]


# ---- the start-up check ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_the_start_up_check_names_the_cluster_node_it_tried(database_url, tmp_path):
    port = free_port()
    app = create_app(
        make_config(
            database_url, tmp_path, REDIS_CLUSTER=True, REDIS_URL=f"redis://127.0.0.1:{port}/0"
        )
    )
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable) as unreachable:
        wait_for_services(app, timeout=1)
    assert time.monotonic() - started < 3
    message = str(unreachable.value)
    assert message.startswith(f"Redis Cluster via 127.0.0.1:{port} unreachable: ")
    assert "\n" not in message


@pytest.mark.timeout(60)
def test_the_start_up_check_names_the_sentinels_it_asked(database_url, tmp_path):
    first, second = free_port(), free_port()
    app = create_app(
        make_config(
            database_url,
            tmp_path,
            REDIS_SENTINELS=f"127.0.0.1:{first},127.0.0.1:{second}",
            REDIS_SENTINEL_SERVICE="svc",
        )
    )
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable) as unreachable:
        wait_for_services(app, timeout=1)
    # Sentinels that refuse are not retried: each costs a refused connection, no more.
    assert time.monotonic() - started < 3
    message = str(unreachable.value)
    assert message.startswith(
        f"Redis primary 'svc' via sentinels 127.0.0.1:{first}, 127.0.0.1:{second} unreachable: "
    )
    assert "\n" not in message


# ---- on real servers ----------------------------------------------------------------


class Topology:
    """A running Redis of one mode: the app's settings for it, and plain clients on the
    server holding a hash tag, to read back what the app wrote."""

    def __init__(self, server):
        self.server = server
        self.clients = []
        if isinstance(server, PrivateCluster):
            self.mode = "cluster"
            self.settings = {"REDIS_URL": server.url, "REDIS_CLUSTER": True}
        elif isinstance(server, PrivateSentinel):
            self.mode = "sentinel"
            self.settings = {
                # Only its password, database and TLS count: nothing listens at its address.
                "REDIS_URL": server.access.url(f"127.0.0.1:{free_port()}"),
                "REDIS_SENTINELS": server.sentinels,
                "REDIS_SENTINEL_SERVICE": server.service,
                "REDIS_SENTINEL_PASSWORD": server.sentinel_access.password,
            }
        else:
            self.mode = "single"
            self.settings = {"REDIS_URL": server.url}

    def prefix(self):
        """A fresh MAIL_STREAM_PREFIX. On a cluster its slot is never on the node REDIS_URL
        names: the app must follow the slot map, not talk to the one node it was given."""
        while True:
            prefix = f"test-{uuid.uuid4().hex[:12]}"
            if self.mode != "cluster":
                return prefix
            if self.server.owner(self.server.slot("{" + prefix + "}")) != self.server.nodes[0]:
                return prefix

    def holder(self, prefix):
        """A plain client on the server that holds the keys of `prefix`."""
        if self.mode == "cluster":
            owner = self.server.owner(self.server.slot("{" + prefix + "}"))
            client = self.server.node_client(owner, decode_responses=True)
        else:
            client = redis.Redis.from_url(self.server.url, decode_responses=True)
        self.clients.append(client)
        return client

    def keys(self, prefix, kind):
        """The keys of `kind` ("throttle", "session", "mail") under `prefix`, as the
        server holding them lists them."""
        return self.holder(prefix).keys("{" + prefix + "}:" + kind + ":*")

    def close(self):
        for client in self.clients:
            client.close()


@pytest.fixture(scope="module")
def shared_sentinel(tmp_path_factory):
    """A sentinel setup for the tests of this module that never fail over."""
    require("redis-server")
    sentinel = PrivateSentinel(tmp_path_factory.mktemp("sentinel"))
    sentinel.start()
    yield sentinel
    sentinel.stop()


@pytest.fixture(params=["cluster", "sentinel"])
def topology(request):
    server = request.getfixturevalue(
        "redis_cluster" if request.param == "cluster" else "shared_sentinel"
    )
    topology = Topology(server)
    yield topology
    topology.close()


@contextmanager
def app_on(topology, database_url, tmp_path, prefix=None):
    """An app on `topology` with the throttles on (and no reminders: a booking's only mail
    is its cancellation's), on emptied tables."""
    prefix = prefix or topology.prefix()
    with running_app(
        database_url,
        tmp_path,
        RATE_LIMITS=True,
        MAIL_REMINDER_BEFORE=0,
        MAIL_STREAM_PREFIX=prefix,
        **topology.settings,
    ) as app:
        yield app


@pytest.mark.timeout(90)
def test_the_sign_in_throttle_counts_in_redis_for_every_process(topology, database_url, tmp_path):
    prefix = topology.prefix()
    with app_on(topology, database_url, tmp_path, prefix) as first:
        # A second web process: the same settings, its own clients and limiter.
        second = create_app(
            make_config(
                database_url,
                tmp_path,
                RATE_LIMITS=True,
                MAIL_STREAM_PREFIX=prefix,
                **topology.settings,
            )
        )
        person = Api(first.test_client()).person()
        failures = [
            sign_in(first.test_client(), person.email, "wrong").status_code for _ in range(5)
        ]
        assert failures == [401] * 5
        assert topology.keys(prefix, "throttle")

        refused = sign_in(second.test_client(), person.email, person.password)
        assert (refused.status_code, refused.json) == (429, TOO_MANY)
        assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
        with second.app_context():
            db.engine.dispose()


@pytest.mark.timeout(90)
def test_an_admin_signs_in_with_a_session_in_redis(topology, database_url, tmp_path):
    prefix = topology.prefix()
    with app_on(topology, database_url, tmp_path, prefix) as app:
        client = app.test_client()
        operator = Api(client).person("Operadora")
        with app.app_context():
            db.session.get(User, operator.id).admin = True
            db.session.commit()

        assert admin_sign_in(client, operator.email, operator.password).status_code == 302
        page = client.get("/admin/queue")
        assert page.status_code == 200, page.get_data(as_text=True)
        assert "Operadora" in page.get_data(as_text=True)
        assert topology.keys(prefix, "session")


def shop_on(app):
    client = app.test_client()
    return Shop(
        app, client, Api(client), lambda days=1, hour=10: shop_slot(app, days=days, hour=hour)
    )


def published_row(app, appointment_id):
    """The delivery row of a cancel's mail, which must say it was published."""
    with app.app_context():
        row = db.session.scalar(
            select(MailDelivery).where(
                MailDelivery.appointment_id == appointment_id,
                MailDelivery.kind == "cancellation",
            )
        )
        db.session.expunge_all()
    assert row is not None and row.published_at is not None, row
    return row


@pytest.mark.timeout(90)
def test_a_cancel_publishes_its_mail_event(topology, database_url, tmp_path):
    prefix = topology.prefix()
    with app_on(topology, database_url, tmp_path, prefix) as app:
        canceled = shop_on(app).cancellation()
        row = published_row(app, canceled["id"])
        queue = mail_queue.get(app)
        lengths = {state["priority"]: state["length"] for state in queue.state()}
        assert lengths == {"high": 0, "default": 1}
        stream = queue.stream_key("default")
        [(entry_id, fields)] = topology.holder(prefix).xrange(stream)
        assert entry_id == row.stream_entry_id
        assert fields["event_id"] == row.event_id


@pytest.mark.timeout(90)
def test_a_cluster_gone_after_its_first_use_still_throttles_in_memory(
    database_url, tmp_path, caplog
):
    require("redis-server", "redis-cli")
    cluster = PrivateCluster(tmp_path / "cluster")
    cluster.start()
    topology = Topology(cluster)
    prefix = topology.prefix()
    try:
        with app_on(topology, database_url, tmp_path, prefix) as app:
            client = app.test_client()
            person = Api(client).person()
            assert sign_in(client, person.email, person.password).status_code == 200
            assert topology.keys(prefix, "throttle")  # counted in the cluster so far
            topology.close()
            cluster.stop()  # every node: the client's next command finds none
            caplog.clear()
            answers = [sign_in(client, person.email, "wrong").status_code for _ in range(6)]
    finally:
        cluster.stop()
    assert answers == [401] * 5 + [429]
    limiter_logs = [r for r in caplog.records if r.name == "flask-limiter"]
    assert [r.levelname for r in limiter_logs] == ["WARNING"]
    assert not any(record.exc_info for record in caplog.records)


def replica_offset(master):
    """How much of the master's replication stream its replica has processed."""
    return master.info("replication").get("slave0", {}).get("offset")


@pytest.mark.timeout(120)
def test_the_throttle_follows_the_primary_across_a_failover(
    redis_sentinel, database_url, tmp_path, caplog
):
    topology = Topology(redis_sentinel)
    prefix = topology.prefix()
    try:
        with app_on(topology, database_url, tmp_path, prefix) as app:
            client = app.test_client()
            person = Api(client).person()
            before = [sign_in(client, person.email, "wrong").status_code for _ in range(3)]
            # Replication is asynchronous: a failover may lose the last writes. Not these.
            master = topology.holder(prefix)
            wait_until(
                lambda: replica_offset(master) == master.info("replication")["master_repl_offset"],
                timeout=10,
                what="the replica to have every count",
            )
            redis_sentinel.failover()
            after = [sign_in(client, person.email, "wrong").status_code for _ in range(3)]
            # Counted on the new primary, with the three the replica had from the old one.
            assert topology.keys(prefix, "throttle")
    finally:
        topology.close()
    assert before + after == [401] * 5 + [429]
    assert not [r for r in caplog.records if r.name == "flask-limiter"]


# ---- password and TLS, in every mode ----------------------------------------------------


@contextmanager
def secured(mode, workdir, tls):
    """A server of `mode` asking for PASSWORD (the sentinel for SENTINEL_PASSWORD), over
    TLS with the certificates in `tls` if given."""
    require("redis-server", "redis-cli")
    workdir.mkdir(parents=True, exist_ok=True)
    if mode == "single":
        server = PrivateRedis(workdir, password=PASSWORD, tls=tls)
    elif mode == "cluster":
        server = PrivateCluster(workdir, password=PASSWORD, tls=tls)
    else:
        server = PrivateSentinel(
            workdir, password=PASSWORD, sentinel_password=SENTINEL_PASSWORD, tls=tls
        )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["single", "cluster", "sentinel"])
@pytest.mark.parametrize("security", ["password", "tls"])
def test_a_signed_in_call_reaches_redis_with_a_password_and_over_tls(
    request, database_url, tmp_path, mode, security
):
    tls = request.getfixturevalue("tls_certificates") if security == "tls" else None
    with secured(mode, tmp_path / "redis", tls) as server:
        topology = Topology(server)
        assert ("rediss://" if tls else "redis://") in topology.settings["REDIS_URL"]
        prefix = topology.prefix()
        try:
            with app_on(topology, database_url, tmp_path, prefix) as app:
                canceled = shop_on(app).cancellation()
                row = published_row(app, canceled["id"])
                stream = mail_queue.get(app).stream_key("default")
                [(entry_id, _)] = topology.holder(prefix).xrange(stream)
                assert entry_id == row.stream_entry_id
                # The throttles counted the booking and the cancel there too.
                assert topology.keys(prefix, "throttle")
        finally:
            topology.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("mode", "refusal"),
    # redis-py names a sentinel's error only by its class ("network:ConnectionError").
    [("single", "certificate verify failed"), ("sentinel", "No master found")],
    ids=["single", "sentinel"],
)
def test_over_tls_the_server_certificate_is_checked(
    tls_certificates, database_url, tmp_path, mode, refusal
):
    with secured(mode, tmp_path / "redis", tls_certificates) as server:
        topology = Topology(server)
        # The CA the test made, left out: the system's CAs never signed its certificate.
        url = topology.settings["REDIS_URL"].split("?")[0]
        config = make_config(database_url, tmp_path, **{**topology.settings, "REDIS_URL": url})
        with pytest.raises(ServiceUnreachable, match=refusal):
            check_redis(create_app(config))
