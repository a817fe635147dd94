"""The start-up check: every service a process needs answers, or it says which does not."""

import redis
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from gobarber.extensions import db, redis_store
from gobarber.redis_connection import address


class ServiceUnreachable(Exception):
    """A database or Redis the app needs does not answer."""


def _where(url):
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        return f"SQLite file {parsed.database}"
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def check_services(app, *, need_redis=True):
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
        connection = redis_store.get(app)
        try:
            connection.ping()
        except redis.RedisError as error:
            raise ServiceUnreachable(
                f"Redis at {address(connection)} unreachable: {error}"
            ) from None
