"""Configuration read from the environment (and `.env` in development)."""

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from redis.connection import parse_url
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

DEFAULT_SLOTS = ",".join(f"{hour:02d}:00" for hour in range(8, 20))


class ConfigError(Exception):
    """A setting is missing or cannot be used."""


def _env(name, default=None):
    value = os.environ.get(name)
    return default if value in (None, "") else value


def _int(name, default):
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _bool(name, default):
    raw = _env(name, "true" if default else "false").strip().lower()
    return raw in ("1", "true", "yes", "on")


def _duration_seconds(name, default):
    """Read `90`, `90s`, `15m`, `12h` or `7d` as seconds."""
    raw = _env(name, default).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (raw[:-1], raw[-1]) if raw[-1:] in units else (raw, "s")
    try:
        return int(number) * units[unit]
    except ValueError:
        raise ConfigError(f"{name} must be a duration like 7d or 3600, got {raw!r}") from None


def database_uri(url):
    """Point PostgreSQL URLs at psycopg 3; hosts hand out both postgres:// and postgresql://."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def parse_slots(raw):
    """Turn `08:00,09:00` into a sorted tuple of (hour, minute) pairs."""
    slots = []
    for item in raw.split(","):
        try:
            hour, minute = (int(part) for part in item.strip().split(":"))
        except ValueError:
            raise ConfigError(f"SHOP_SLOTS has a bad time {item!r}; use HH:MM") from None
        if not (0 <= hour < 24 and minute == 0):
            raise ConfigError(f"SHOP_SLOTS has {item!r}; slots start on the hour")
        slots.append((hour, minute))
    return tuple(sorted(set(slots)))


def from_environment():
    """Build the Flask config mapping from environment variables."""
    port = _int("PORT", 3333)
    timezone = _env("SHOP_TIMEZONE", "America/Sao_Paulo")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"SHOP_TIMEZONE {timezone!r} is not an IANA time zone") from None
    return {
        "APP_ENV": _env("APP_ENV", "production"),
        "SECRET_KEY": _env("SECRET_KEY") or _env("APP_SECRET"),
        "SQLALCHEMY_DATABASE_URI": database_uri(_env("DATABASE_URL", "sqlite:///gobarber.db")),
        "REDIS_URL": _env("REDIS_URL", "redis://localhost:6379/0"),
        "APP_URL": _env("APP_URL", f"http://localhost:{port}").rstrip("/"),
        # The admin page's session cookie: not sent on cross-site requests.
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PORT": port,
        "SHOP_TIMEZONE": timezone,
        "SHOP_SLOTS": parse_slots(_env("SHOP_SLOTS", DEFAULT_SLOTS)),
        "JWT_EXPIRES_IN": _duration_seconds("JWT_EXPIRES_IN", "7d"),
        "MAX_UPLOAD_MB": _int("MAX_UPLOAD_MB", 5),
        "UPLOAD_FOLDER": _env("UPLOAD_FOLDER"),
        "MAIL_SERVER": _env("MAIL_SERVER", "localhost"),
        "MAIL_PORT": _int("MAIL_PORT", 2525),
        "MAIL_USE_TLS": _bool("MAIL_USE_TLS", False),
        "MAIL_USE_SSL": _bool("MAIL_USE_SSL", False),
        "MAIL_USERNAME": _env("MAIL_USERNAME"),
        "MAIL_PASSWORD": _env("MAIL_PASSWORD"),
        "MAIL_DEFAULT_SENDER": _env(
            "MAIL_DEFAULT_SENDER", "Equipe GoBarber <noreply@gobarber.com>"
        ),
        "MAIL_TIMEOUT": _int("MAIL_TIMEOUT", 10),
        "MAIL_SUPPRESS_SEND": False,
        "MAIL_STREAM_PREFIX": _env("MAIL_STREAM_PREFIX", "gobarber"),
        "MAIL_GROUP": _env("MAIL_GROUP", "mailers"),
        "MAIL_MAX_ATTEMPTS": _int("MAIL_MAX_ATTEMPTS", 15),
        "MAIL_VISIBILITY_TIMEOUT": _int("MAIL_VISIBILITY_TIMEOUT", 60),
        "MAIL_RETRY_BASE": float(_env("MAIL_RETRY_BASE", "30")),
        "MAIL_RETRY_MAX": float(_env("MAIL_RETRY_MAX", "3600")),
        "MAIL_DEAD_MAX": _int("MAIL_DEAD_MAX", 10_000),
        "STARTUP_WAIT": _int("STARTUP_WAIT", 0),
        "MAIL_BATCH_SIZE": _int("MAIL_BATCH_SIZE", 50),
        "MAIL_BLOCK_MS": _int("MAIL_BLOCK_MS", 2000),
        "MAIL_RELAY_AFTER": _int("MAIL_RELAY_AFTER", 5),
        "MAIL_REPUBLISH_AFTER": _int("MAIL_REPUBLISH_AFTER", 300),
        "MAIL_CONSUMER_NAME": _env("MAIL_CONSUMER_NAME"),
        # Worker heartbeats, and what /health/mail calls too old for a pending entry.
        "MAIL_HEARTBEAT_INTERVAL": float(_env("MAIL_HEARTBEAT_INTERVAL", "5")),
        "MAIL_HEALTH_MAX_PENDING_AGE": _int("MAIL_HEALTH_MAX_PENDING_AGE", 300),
        "REAPER_INTERVAL": float(_env("REAPER_INTERVAL", "5")),
        "REAPER_BATCH_SIZE": _int("REAPER_BATCH_SIZE", 1000),
        "REDIS_SOCKET_TIMEOUT": _int("REDIS_SOCKET_TIMEOUT", 5),
        "LOG_LEVEL": _env("LOG_LEVEL", "INFO").upper(),
        "LOG_FORMAT": _env("LOG_FORMAT", "text").lower(),
    }


def _check_urls(config):
    # A URL that can never work is a one-line error at start, never a traceback.
    try:
        make_url(config["SQLALCHEMY_DATABASE_URI"]).get_dialect()
    except (ArgumentError, NoSuchModuleError):
        raise ConfigError(
            "DATABASE_URL is not a database URL (postgresql://user:pw@host:5432/db or "
            "sqlite:///path)"
        ) from None
    try:
        parse_url(config["REDIS_URL"])
    except ValueError as error:
        raise ConfigError(f"REDIS_URL cannot be used: {error}") from None


def validate(config):
    """Refuse settings the app cannot run safely with."""
    _check_urls(config)
    if not config.get("SECRET_KEY"):
        if config["APP_ENV"] in ("development", "test"):
            config["SECRET_KEY"] = "development-only-secret-never-use-in-production"
        else:
            raise ConfigError(
                "SECRET_KEY (or APP_SECRET) is not set; it is required outside development"
            )
    if config["MAX_UPLOAD_MB"] < 1:
        raise ConfigError("MAX_UPLOAD_MB must be at least 1")
    if config["MAIL_MAX_ATTEMPTS"] < 1:
        raise ConfigError("MAIL_MAX_ATTEMPTS must be at least 1")
    # A worker still talking to the SMTP server must not look dead to the reaper.
    if config["MAIL_VISIBILITY_TIMEOUT"] <= config["MAIL_TIMEOUT"]:
        raise ConfigError(
            f"MAIL_VISIBILITY_TIMEOUT ({config['MAIL_VISIBILITY_TIMEOUT']}s) must exceed "
            f"MAIL_TIMEOUT ({config['MAIL_TIMEOUT']}s)"
        )
    if not 0 < config["MAIL_RETRY_BASE"] <= config["MAIL_RETRY_MAX"]:
        raise ConfigError("MAIL_RETRY_BASE must be above 0 and not above MAIL_RETRY_MAX")
    if config["STARTUP_WAIT"] < 0:
        raise ConfigError("STARTUP_WAIT must be 0 (wait forever) or a number of seconds")
    if config["MAIL_DEAD_MAX"] < 1:
        raise ConfigError("MAIL_DEAD_MAX must be at least 1")
    if config["MAIL_HEARTBEAT_INTERVAL"] <= 0:
        raise ConfigError("MAIL_HEARTBEAT_INTERVAL must be above 0")
    # An entry the reaper may not take back yet is no sign of trouble.
    if config["MAIL_HEALTH_MAX_PENDING_AGE"] <= config["MAIL_VISIBILITY_TIMEOUT"]:
        raise ConfigError("MAIL_HEALTH_MAX_PENDING_AGE must exceed MAIL_VISIBILITY_TIMEOUT")
    # A blocking read must return before the Redis client gives up on the socket.
    if config["MAIL_BLOCK_MS"] >= config["REDIS_SOCKET_TIMEOUT"] * 1000:
        raise ConfigError("MAIL_BLOCK_MS must be below REDIS_SOCKET_TIMEOUT (in ms)")
