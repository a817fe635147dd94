"""Shared fixtures: a fresh database per run, a clean one per test, real Redis and SMTP.

PostgreSQL by default (`TEST_DATABASE_URL` names the server; a new database is created
for the run and dropped after it). `TEST_DATABASE=sqlite` runs the same tests on a
SQLite file instead, as the zero-setup default does.
"""

import os
import uuid
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
import redis
from flask_migrate import upgrade
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from gobarber import create_app
from gobarber.extensions import db
from tests.smtp_server import SmtpServer

pytest_plugins = ["tests.pipeline"]

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
USE_SQLITE = os.environ.get("TEST_DATABASE", "postgresql") == "sqlite"
TABLES = ("mail_deliveries", "notifications", "appointments", "users", "files")


def pytest_collection_modifyitems(config, items):
    if USE_SQLITE:
        skip = pytest.mark.skip(reason="needs PostgreSQL")
        for item in items:
            if "postgres_only" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """Create a database for this run, migrate it with `flask db upgrade`, drop it after."""
    if USE_SQLITE:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'gobarber.db'}"
        _migrate(url)
        yield url
        return
    name = f"gobarber_test_{uuid.uuid4().hex[:10]}"
    admin = make_url(ADMIN_URL)
    with psycopg.connect(_libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    _migrate(url)
    yield url
    with psycopg.connect(_libpq(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq(url):
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _migrate(url):
    app = create_app({"APP_ENV": "test", "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()


def make_config(database_url, tmp_path, **overrides):
    """The test configuration: this run's database, a Redis prefix of the test's own."""
    from gobarber.config import database_uri

    config = {
        "APP_ENV": "test",
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-long-enough-for-hs256-signing",
        "SQLALCHEMY_DATABASE_URI": database_uri(database_url),
        "REDIS_URL": REDIS_URL,
        "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        "MAIL_STREAM_PREFIX": f"test-{uuid.uuid4().hex[:12]}",
        "APP_URL": "http://testserver",
        "MAIL_RELAY_AFTER": 0,
    }
    config.update(overrides)
    return config


def clean_database(app):
    """Empty every table, so each test starts from nothing."""
    with app.app_context():
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
            else:
                for table in TABLES:
                    conn.execute(text(f"DELETE FROM {table}"))
        db.engine.dispose()


def clean_redis(prefix):
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match="{" + prefix + "}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def config_overrides():
    """Override in a module to change the app's settings for its tests."""
    return {}


@contextmanager
def running_app(database_url, tmp_path, **overrides):
    """An app on emptied tables with a Redis prefix of its own, cleaned up after."""
    app = create_app(make_config(database_url, tmp_path, **overrides))
    clean_database(app)
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        clean_redis(app.config["MAIL_STREAM_PREFIX"])


@pytest.fixture
def app(database_url, tmp_path, config_overrides):
    with running_app(database_url, tmp_path, **config_overrides) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


class Person:
    """A signed-up, signed-in user: id, token and the headers to act as them."""

    def __init__(self, data, token, password):
        self.id = data["id"]
        self.name = data["name"]
        self.email = data["email"]
        self.token = token
        self.password = password
        self.headers = {"Authorization": f"Bearer {token}"}


class Api:
    """Sign people up and in through the API itself, as the clients do."""

    def __init__(self, client):
        self.client = client
        self.count = 0

    def person(self, name=None, *, provider=False, password="secret123"):
        self.count += 1
        name = name or f"Person {self.count}"
        email = f"person{self.count}-{uuid.uuid4().hex[:6]}@barber.example.com"
        body = {"name": name, "email": email, "password": password, "provider": provider}
        created = self.client.post("/users", json=body)
        assert created.status_code == 200, created.json
        signed = self.client.post("/sessions", json={"email": email, "password": password})
        assert signed.status_code == 200, signed.json
        return Person(created.json, signed.json["token"], password)

    def provider(self, name=None):
        return self.person(name, provider=True)

    def book(self, customer, provider, when):
        """Book `when` (an aware datetime or ISO text) and return the response."""
        date = when if isinstance(when, str) else when.isoformat()
        return self.client.post(
            "/appointments",
            json={"provider_id": provider.id, "date": date},
            headers=customer.headers,
        )


@pytest.fixture
def api(client):
    return Api(client)


def shop_slot(app, *, days=1, hour=10):
    """Return an aware datetime in shop time, `days` from today at `hour`:00."""
    zone = ZoneInfo(app.config["SHOP_TIMEZONE"])
    day = datetime.now(zone).date() + timedelta(days=days)
    return datetime.combine(day, time(hour), tzinfo=zone)


@pytest.fixture
def slot(app):
    """Make slots relative to today: `slot(days=2, hour=9)`."""
    return lambda days=1, hour=10: shop_slot(app, days=days, hour=hour)


class QueryCounter:
    def __init__(self):
        self.statements = []

    def __call__(self, conn, cursor, statement, *args):
        self.statements.append(statement)

    @property
    def count(self):
        return len(self.statements)


@pytest.fixture
def count_queries(app):
    """Count the SQL statements run inside a `with count_queries() as counter:` block."""

    @contextmanager
    def counting():
        counter = QueryCounter()
        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", counter)
        try:
            yield counter
        finally:
            event.remove(engine, "before_cursor_execute", counter)

    return counting


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) in this process; tests read what it received."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()
