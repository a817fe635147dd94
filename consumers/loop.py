"""The loop every consumer runs: initialize, repeat one pass until told to stop, shut down.

Signal handlers only set the stop flag, so SIGTERM and SIGINT let the entry in hand
finish. A Redis or database error is logged and followed by a capped backoff, never a
hot spin; the process keeps running and recovers when the service returns.
"""

import argparse
import logging
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
from gobarber.readiness import ServiceUnreachable, check_services

log = logging.getLogger(__name__)

RECOVERABLE = (redis.RedisError, SQLAlchemyError, OSError)
ERROR_BACKOFF_BASE_S = 0.5
ERROR_BACKOFF_MAX_S = 30.0


def consumer_name(app, kind):
    """A name that survives restarts of the same process slot on the same host."""
    return app.config.get("MAIL_CONSUMER_NAME") or f"{socket.gethostname()}-{kind}"


class Stop:
    """The stop flag: set by a signal, waited on instead of sleeping."""

    def __init__(self):
        self._event = threading.Event()

    def set(self, *_signal_args):
        self._event.set()

    def is_set(self):
        return self._event.is_set()

    def wait(self, seconds):
        """Wait up to `seconds`, returning early when stopped."""
        return self._event.wait(seconds)

    def install(self):
        signal.signal(signal.SIGTERM, self.set)
        signal.signal(signal.SIGINT, self.set)


def run(consumer, stop, *, once=False):
    """Run `consumer` until `stop` is set (or for one pass with `once`)."""
    failures = 0
    initialized = False
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
            if "NOGROUP" not in str(error):
                raise
            # Redis lost the group (restarted empty): initialize again creates it.
            log.warning("%s: consumer group missing; creating it again", consumer.name)
            initialized = False
        except RECOVERABLE as error:
            failures += 1
            delay = compute_backoff(failures, base=ERROR_BACKOFF_BASE_S, cap=ERROR_BACKOFF_MAX_S)
            log.warning("%s: %s; retrying in %.1fs", consumer.name, error, delay)
            stop.wait(delay)
    consumer.shutdown()


def main(kind, build, description, argv=None):
    """Parse the command line, build the app and the consumer, run it until a signal."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--name", help="stable consumer name (default: MAIL_CONSUMER_NAME)")
    parser.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
    args = parser.parse_args(argv)
    load_dotenv()
    try:
        app = create_app()
        check_services(app)
    except (ConfigError, ServiceUnreachable) as error:
        sys.exit(f"gobarber: {error}")
    logs.configure(app, kind)
    stop = Stop()
    stop.install()
    consumer = build(app, stop=stop, name=args.name)
    run(consumer, stop, once=args.once)
