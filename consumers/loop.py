"""The loop every consumer runs: initialize, repeat one pass until told to stop, shut down.

Signal handlers only set the stop flag, so SIGTERM and SIGINT let the entry in hand
finish. A Redis or database error is logged and followed by a capped backoff, never a
hot spin; the process keeps running and recovers when the service returns.
"""

import argparse
import logging
import os
import signal
import socket
import sys
import threading

import redis
from dotenv import load_dotenv
from sqlalchemy.exc import SQLAlchemyError

from gobarber import create_app, logs
from gobarber.backoff import compute_backoff
from gobarber.config import ConfigError
from gobarber.readiness import ServiceUnreachable, wait_for_services
from gobarber.redis_connection import REDIS_ERRORS

log = logging.getLogger(__name__)

RECOVERABLE = (*REDIS_ERRORS, SQLAlchemyError, OSError)
ERROR_BACKOFF_BASE_S = 0.5
ERROR_BACKOFF_MAX_S = 30.0


def consumer_name(app, kind):
    """A name that survives restarts of the same process slot on the same host."""
    return app.config.get("MAIL_CONSUMER_NAME") or f"{socket.gethostname()}-{kind}"


class ColdStop(BaseException):
    """A second signal: stop now, leaving the entry in hand pending for the reaper."""


class Stop:
    """The stop flag: set by a signal, waited on instead of sleeping.

    The first SIGTERM or SIGINT lets the entry in hand finish (a warm stop); a second one
    stops at once (a cold stop), as rq's worker does.
    """

    def __init__(self):
        self._event = threading.Event()

    def set(self):
        self._event.set()

    def is_set(self):
        return self._event.is_set()

    def wait(self, seconds):
        """Wait up to `seconds`, returning early when stopped."""
        return self._event.wait(seconds)

    def _on_signal(self, number, _frame):
        name = signal.Signals(number).name
        if self._event.is_set():
            raise ColdStop(name)
        self._event.set()
        # os.write, not logging: a signal handler may run while logging holds its lock.
        os.write(2, f"{name}: finishing the entry in hand; send it again to stop now\n".encode())

    def install(self):
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)


def run(consumer, stop, *, once=False):
    """Run `consumer` until `stop` is set (or for one pass with `once`).

    Every Redis, database or network error is survivable: it is logged in one line, the
    consumer backs off, drops its connections when Redis said they lead nowhere useful
    (a replica after a failover), initializes again and carries on. `shutdown()` runs
    however the loop ends.
    """
    failures = 0
    initialized = False
    try:
        while not stop.is_set():
            try:
                if not initialized:
                    consumer.initialize()
                    initialized = True
                consumer.loop()
                failures = 0
                if once:
                    break
            except redis.ResponseError as error:
                if "NOGROUP" in str(error):
                    # Redis lost the group (restarted empty): initialize again creates it.
                    log.warning("%s: consumer group missing; creating it again", consumer.name)
                    initialized = False
                    continue
                failures = _back_off(consumer, stop, error, failures)
                initialized = False
            except RECOVERABLE as error:
                failures = _back_off(consumer, stop, error, failures)
                initialized = False
    except ColdStop as signal_name:
        log.warning("%s: second %s; stopping now", consumer.name, signal_name)
    finally:
        consumer.shutdown()


def _back_off(consumer, stop, error, failures):
    failures += 1
    delay = compute_backoff(failures, base=ERROR_BACKOFF_BASE_S, cap=ERROR_BACKOFF_MAX_S)
    what = type(error).__name__
    log.warning("%s: %s: %s; retrying in %.1fs", consumer.name, what, error, delay)
    if isinstance(error, REDIS_ERRORS):
        # The node answering may be a replica now (a failover demoted it), or no longer
        # serve the slot (a resharding moved it): new connections, and a cluster client's
        # fresh slot map, find where the keys live now.
        consumer.reconnect()
    stop.wait(delay)
    return failures


def main(kind, build, description, argv=None):
    """Parse the command line, build the app and the consumer, run it until a signal."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--name", help="stable consumer name (default: MAIL_CONSUMER_NAME)")
    parser.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
    args = parser.parse_args(argv)
    load_dotenv()
    try:
        app = create_app()
    except ConfigError as error:
        sys.exit(f"gobarber: {error}")
    logs.configure(app, kind)
    stop = Stop()
    stop.install()
    try:
        wait_for_services(app, stop=stop, timeout=app.config["STARTUP_WAIT"])
    except ServiceUnreachable as error:
        sys.exit(f"gobarber: {error}")
    if stop.is_set():
        return
    consumer = build(app, stop=stop, name=args.name)
    run(consumer, stop, once=args.once)
