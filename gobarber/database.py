"""Engine settings per database, and the start-up check that every service answers."""

import redis
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from gobarber.extensions import db

SQLITE_BUSY_TIMEOUT_S = 30


def engine_options(uri):
    """Return engine options: SQLite waits for a busy writer, PostgreSQL checks pooled links."""
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}


def tune(app):
    """Put a SQLite database in WAL mode: web, worker and reaper share the file."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    with app.app_context():

        @event.listens_for(db.engine, "connect")
        def _sqlite_pragmas(connection, _record):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()


class ServiceUnreachable(Exception):
    """A database or Redis the app needs does not answer."""


def _where(url):
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        return f"SQLite file {parsed.database}"
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def check_reachable(app, *, need_redis=True):
    """Raise ServiceUnreachable, naming host and port, if the database or Redis is down."""
    with app.app_context():
        try:
            with db.engine.connect():
                pass
        except SQLAlchemyError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            uri = app.config["SQLALCHEMY_DATABASE_URI"]
            raise ServiceUnreachable(f"database at {_where(uri)} unreachable: {reason}") from None
        finally:
            db.engine.dispose()
        if need_redis:
            client = app.extensions["redis"]
            try:
                client.ping()
            except redis.RedisError as error:
                kwargs = client.connection_pool.connection_kwargs
                where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
                raise ServiceUnreachable(f"Redis at {where} unreachable: {error}") from None
