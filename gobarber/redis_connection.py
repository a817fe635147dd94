"""The Redis connection every process shares: built from the settings, checked at start."""

import redis


def connect(config, *, decode_responses=True):
    """Return a Redis client for `REDIS_URL`, decoding replies, never waiting forever.

    Bytes that are not UTF-8 decode with replacement characters instead of raising: an
    entry any producer wrote must never crash the process that reads it (an unreadable
    event id is then dead-lettered like any other poison). `decode_responses=False` is
    for callers that store bytes (the admin sessions, serialised by Flask-Session).
    """
    timeout = config.get("REDIS_SOCKET_TIMEOUT", 5)
    return redis.Redis.from_url(
        config["REDIS_URL"],
        decode_responses=decode_responses,
        encoding_errors="replace",
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )


def address(connection):
    """Return the `host:port` a client talks to, for messages."""
    kwargs = connection.connection_pool.connection_kwargs
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
