"""The app under test: its configuration, its database and Redis keys, the shop's clock.

`TEST_DATABASE_URL` names the PostgreSQL server (the fixtures create a database of the
run's own on it); `TEST_DATABASE=sqlite` runs on a SQLite file instead.
"""

import os
import uuid
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import redis
from flask_migrate import upgrade
from sqlalchemy import text

from gobarber import create_app
from gobarber.extensions import db
from gobarber.testing import PrivateRedis

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
USE_SQLITE = os.environ.get("TEST_DATABASE", "postgresql") == "sqlite"
TABLES = (
    "mail_deliveries",
    "password_resets",
    "notifications",
    "appointments",
    "users",
    "files",
)


def libpq(url):
    """Render a SQLAlchemy URL as psycopg's connection string, password included."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def migrate(url):
    """Build the schema at `url` as `flask db upgrade` does."""
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
        # Cheap hashes: the suite signs up thousands of users. tests/api/test_passwords.py
        # checks the production cost.
        "BCRYPT_ROUNDS": 4,
        # The suite's few customers book and cancel far more than any real one, from one
        # address; the limits have tests of their own, at their defaults.
        "RATE_LIMITS": False,
        "MAX_ACTIVE_BOOKINGS": 10_000,
        "CANCELLATION_MAILS_PER_DAY": 10_000,
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
    """Delete every Redis key under `prefix`."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match="{" + prefix + "}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


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


@contextmanager
def private_app(database_url, tmp_path, **overrides):
    """An app whose Redis is a redis-server of the test's own, to stop and start; yields
    (app, the PrivateRedis)."""
    private = PrivateRedis(tmp_path)
    private.start()
    try:
        config = make_config(database_url, tmp_path, REDIS_URL=private.url, **overrides)
        yield create_app(config), private
    finally:
        private.stop()


def shop_slot(app, *, days=1, hour=10):
    """Return an aware datetime in shop time, `days` from today at `hour`:00."""
    zone = ZoneInfo(app.config["SHOP_TIMEZONE"])
    day = datetime.now(zone).date() + timedelta(days=days)
    return datetime.combine(day, time(hour), tzinfo=zone)
