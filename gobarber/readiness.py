"""The start-up check: every service a process needs answers, or it says which does not.

A database or Redis that does not answer yet (an outage, a cluster still starting) is
waited for: one line names it and says so, and the process comes up when it answers. An
address that can never work (a host name that does not resolve) stops the process at
once with one line, because a wrong address must stay loud.
"""

import logging
import socket
import time

from redis.exceptions import AskError, MovedError, ReadOnlyError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from gobarber.backoff import compute_backoff
from gobarber.extensions import db, mail_queue, redis_store
from gobarber.redis_connection import REDIS_ERRORS, describe, hosts

log = logging.getLogger(__name__)

WAIT_BASE_S = 0.5
WAIT_MAX_S = 10.0


class ServiceUnreachable(Exception):
    """A database or Redis the app needs does not answer."""

    def __init__(self, message, *, permanent=False):
        super().__init__(message)
        self.permanent = permanent


def _where(url):
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        return f"SQLite file {parsed.database}"
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def _resolves(host):
    """Tell whether a host name resolves; a lookup that merely failed for now counts."""
    if not host:
        return True
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as error:
        return error.errno not in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None))
    return True


def check_database(app):
    """Raise ServiceUnreachable, naming host and port, if the database does not answer."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    with app.app_context():
        try:
            with db.engine.connect():
                pass
        except SQLAlchemyError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            raise ServiceUnreachable(
                f"database at {_where(uri)} unreachable: {reason}",
                permanent=not _resolves(make_url(uri).host),
            ) from None
        finally:
            db.engine.dispose()


def check_redis(app):
    """Raise ServiceUnreachable, naming the nodes or sentinels tried, if Redis does not
    take writes where the mail keys live.

    A single-node client pointed at a cluster node is refused at once: it would follow no
    redirection, and every command on a slot another node serves would fail.
    """
    try:
        redis_store.get(app).ping()
        mail_queue.get(app).check_writable()
    except (MovedError, AskError) as error:
        raise ServiceUnreachable(
            f"{describe(app.config)} is a Redis Cluster node that does not serve the mail "
            f"keys ({error}); set REDIS_CLUSTER=true",
            permanent=True,
        ) from None
    except ReadOnlyError as error:
        raise ServiceUnreachable(f"{describe(app.config)} takes no writes: {error}") from None
    except REDIS_ERRORS as error:
        raise ServiceUnreachable(
            f"{describe(app.config)} unreachable: {error}",
            permanent=not any(_resolves(host) for host in hosts(app.config)),
        ) from None


def check_services(app, *, need_redis=True):
    """Raise ServiceUnreachable if the database or (with `need_redis`) Redis is down."""
    check_database(app)
    if need_redis:
        check_redis(app)


def wait_for_services(app, *, stop=None, timeout=0, need_redis=True):
    """Wait until the database and Redis answer; `timeout` seconds at most (0: forever).

    Logs one line when it starts waiting and one when the service answers. Raises
    ServiceUnreachable at once for an address that cannot work, and after `timeout`.
    """
    deadline = time.monotonic() + timeout if timeout else None
    attempt, waiting = 0, None
    while stop is None or not stop.is_set():
        try:
            check_services(app, need_redis=need_redis)
        except ServiceUnreachable as error:
            if error.permanent or (deadline is not None and time.monotonic() >= deadline):
                raise
            if waiting != str(error):
                waiting = str(error)
                limit = f"up to {timeout}s" if timeout else "until it answers (STARTUP_WAIT=0)"
                log.warning("%s; waiting %s", error, limit)
            attempt += 1
            delay = compute_backoff(attempt, base=WAIT_BASE_S, cap=WAIT_MAX_S)
            if deadline is not None:
                delay = max(0.0, min(delay, deadline - time.monotonic()))
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
            continue
        if waiting:
            log.warning("services answer now; starting")
        return
