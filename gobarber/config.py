"""Configuration read from the environment (and `.env` in development)."""

import os
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse_many
from redis.connection import parse_url
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

DEFAULT_SLOTS = ",".join(f"{hour:02d}:00" for hour in range(8, 20))
# HS256 keys shorter than the hash are guessable offline from one token (RFC 7518 3.2).
MIN_SECRET_BYTES = 32
# Throttles, in `limits` notation ("5 per 15 minutes", "20/hour"); `RATE_LIMITS=off`
# turns them all off. What each one counts is in gobarber/throttle.py.
RATE_LIMIT_DEFAULTS = {
    "RATE_LIMIT_DEFAULT": "600 per minute",
    "RATE_LIMIT_SIGN_IN_ACCOUNT": "5 per 15 minutes",
    "RATE_LIMIT_SIGN_IN_ADDRESS": "50 per 15 minutes",
    "RATE_LIMIT_SIGN_UP": "10 per hour",
    "RATE_LIMIT_BOOKING": "20 per hour",
    "RATE_LIMIT_CANCEL": "20 per hour",
    "RATE_LIMIT_UPLOAD": "20 per hour",
}


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


def _on_off(name, default):
    raw = _env(name, default).strip().lower()
    if raw not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{name} must be on or off, got {raw!r}")
    return raw in ("on", "true", "1", "yes")


def _origins(raw):
    origins = [origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip()]
    return "*" if origins in ([], ["*"]) else origins


def sentinel_addresses(raw):
    """Turn `host:port,host:port` into [(host, port)]; the port defaults to 26379."""
    addresses = []
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        host = host.strip("[]")
        if not host or " " in host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"REDIS_SENTINELS has {item!r}; use host:port,host:port")
        addresses.append((host, int(port)))
    return addresses


def parse_shards(raw, total):
    """Turn `0-3,6` into the sorted shard numbers it names; None or empty: all of them."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return tuple(range(total))
    if not isinstance(raw, str):
        numbers = {int(number) for number in raw}
    else:
        numbers = set()
        for item in raw.split(","):
            first, _, last = item.strip().partition("-")
            if not first.isdigit() or not (last.isdigit() or last == ""):
                raise ConfigError(f"MAIL_SHARDS has {item.strip()!r}; write e.g. 0-3,6")
            numbers.update(range(int(first), int(last or first) + 1))
    outside = sorted(number for number in numbers if not 0 <= number < total)
    if outside or not numbers:
        raise ConfigError(
            f"MAIL_SHARDS names shard {outside[0] if outside else '(none)'}; with "
            f"MAIL_STREAM_SHARDS={total} the shards are 0-{total - 1}"
        )
    return tuple(sorted(numbers))


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
    app_url = _env("APP_URL", f"http://localhost:{port}").rstrip("/")
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
        # Past one Redis (gobarber/redis_connection.py): a cluster reached through any
        # node of REDIS_URL, or the primary the sentinels name.
        "REDIS_CLUSTER": _bool("REDIS_CLUSTER", False),
        "REDIS_SENTINELS": _env("REDIS_SENTINELS", ""),
        "REDIS_SENTINEL_SERVICE": _env("REDIS_SENTINEL_SERVICE", "gobarber"),
        "REDIS_SENTINEL_PASSWORD": _env("REDIS_SENTINEL_PASSWORD"),
        "APP_URL": app_url,
        # Where the web pages are: the reset mail's link points here.
        "APP_WEB_URL": _env("APP_WEB_URL"),
        # The admin page's session cookie: not sent on cross-site requests.
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PORT": port,
        "SHOP_TIMEZONE": timezone,
        "SHOP_SLOTS": parse_slots(_env("SHOP_SLOTS", DEFAULT_SLOTS)),
        "JWT_EXPIRES_IN": _duration_seconds("JWT_EXPIRES_IN", "7d"),
        "PASSWORD_RESET_TTL": _duration_seconds("PASSWORD_RESET_TTL", "2h"),
        # How long before an appointment its reminder is due; 0 turns reminders off.
        "MAIL_REMINDER_BEFORE": _duration_seconds("MAIL_REMINDER_BEFORE", "24h"),
        "BCRYPT_ROUNDS": _int("BCRYPT_ROUNDS", 12),
        # The admin page's server-side session (in Redis): how long it lasts unused.
        "PERMANENT_SESSION_LIFETIME": _duration_seconds("ADMIN_SESSION_LIFETIME", "12h"),
        "RATE_LIMITS": _on_off("RATE_LIMITS", "on"),
        **{name: _env(name, default) for name, default in RATE_LIMIT_DEFAULTS.items()},
        # Proxies in front of the app that append to X-Forwarded-For (werkzeug ProxyFix).
        "TRUSTED_PROXIES": _int("TRUSTED_PROXIES", 0),
        "CORS_ORIGINS": _origins(_env("CORS_ORIGINS", "*")),
        "HEALTH_TOKEN": _env("HEALTH_TOKEN"),
        "BOOKING_HORIZON_DAYS": _int("BOOKING_HORIZON_DAYS", 90),
        "MAX_ACTIVE_BOOKINGS": _int("MAX_ACTIVE_BOOKINGS", 10),
        "CANCELLATION_MAILS_PER_DAY": _int("CANCELLATION_MAILS_PER_DAY", 5),
        "MAX_JSON_KB": _int("MAX_JSON_KB", 64),
        "MAX_UPLOAD_MB": _int("MAX_UPLOAD_MB", 5),
        "UPLOAD_QUOTA_MB": _int("UPLOAD_QUOTA_MB", 20),
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
        # The streams' shards, each under a hash tag of its own; which ones this process
        # reads (all when unset).
        "MAIL_STREAM_SHARDS": _int("MAIL_STREAM_SHARDS", 1),
        "MAIL_SHARDS": _env("MAIL_SHARDS"),
        "MAIL_MAX_ATTEMPTS": _int("MAIL_MAX_ATTEMPTS", 15),
        "MAIL_VISIBILITY_TIMEOUT": _int("MAIL_VISIBILITY_TIMEOUT", 60),
        "MAIL_RETRY_BASE": float(_env("MAIL_RETRY_BASE", "30")),
        "MAIL_RETRY_MAX": float(_env("MAIL_RETRY_MAX", "3600")),
        "MAIL_DEAD_MAX": _int("MAIL_DEAD_MAX", 10_000),
        "STARTUP_WAIT": _int("STARTUP_WAIT", 0),
        "MAIL_BATCH_SIZE": _int("MAIL_BATCH_SIZE", 50),
        # SMTP sessions a worker keeps sending at once, each reused from mail to mail.
        "MAIL_CONCURRENCY": _int("MAIL_CONCURRENCY", 16),
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


def _check_redis_mode(config):
    sentinels = config.get("REDIS_SENTINELS") or ""
    if isinstance(sentinels, str):
        sentinels = sentinel_addresses(sentinels)
    config["REDIS_SENTINELS"] = [tuple(address) for address in sentinels]
    if config["REDIS_SENTINELS"] and config.get("REDIS_CLUSTER"):
        raise ConfigError("REDIS_CLUSTER and REDIS_SENTINELS exclude each other; set one")
    if config["REDIS_SENTINELS"] and not config.get("REDIS_SENTINEL_SERVICE"):
        raise ConfigError("REDIS_SENTINEL_SERVICE must name the primary the sentinels watch")
    if config.get("REDIS_CLUSTER") and parse_url(config["REDIS_URL"]).get("db", 0) != 0:
        raise ConfigError("a Redis Cluster has database 0 only; end REDIS_URL with /0")
    if not 1 <= config["MAIL_STREAM_SHARDS"] <= 1024:
        raise ConfigError("MAIL_STREAM_SHARDS must be between 1 and 1024")
    config["MAIL_SHARDS"] = parse_shards(config.get("MAIL_SHARDS"), config["MAIL_STREAM_SHARDS"])


def development_secret(instance_path):
    """Return this checkout's own random secret, made on first use in `instance/`.

    Never a constant in the source: anyone could forge tokens with a published one.
    """
    path = Path(instance_path) / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        # O_EXCL: of two processes starting at once, one writes and both read its secret.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
    return secret


def _check_secret(config, instance_path):
    secret = config.get("SECRET_KEY")
    if config["APP_ENV"] in ("development", "test"):
        if not secret:
            config["SECRET_KEY"] = development_secret(instance_path)
        return
    if not secret:
        raise ConfigError(
            "SECRET_KEY (or APP_SECRET) is not set; it is required outside development"
        )
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes outside development "
            '(python3 -c "import secrets; print(secrets.token_urlsafe(48))" makes one)'
        )


def _check_rate_limits(config):
    for name in RATE_LIMIT_DEFAULTS:
        try:
            parse_many(config[name])
        except ValueError:
            raise ConfigError(
                f"{name} must read like '5 per 15 minutes' or '20/hour', got {config[name]!r}"
            ) from None


def validate(config, instance_path="instance"):
    """Refuse settings the app cannot run safely with."""
    _check_urls(config)
    _check_redis_mode(config)
    # Unset, the web pages are where the API is (APP_URL as finally configured).
    config["APP_WEB_URL"] = (config.get("APP_WEB_URL") or config["APP_URL"]).rstrip("/")
    _check_secret(config, instance_path)
    _check_rate_limits(config)
    if config["PASSWORD_RESET_TTL"] < 1:
        raise ConfigError("PASSWORD_RESET_TTL must be at least one second, e.g. 2h")
    if config["MAIL_REMINDER_BEFORE"] < 0:
        raise ConfigError("MAIL_REMINDER_BEFORE must be 0 (no reminders) or a duration")
    if not 4 <= config["BCRYPT_ROUNDS"] <= 16:
        raise ConfigError("BCRYPT_ROUNDS must be between 4 and 16 (12 is the default)")
    if config["TRUSTED_PROXIES"] < 0:
        raise ConfigError("TRUSTED_PROXIES must be 0 (no proxy) or the number of proxies")
    at_least_one = (
        "BOOKING_HORIZON_DAYS",
        "MAX_ACTIVE_BOOKINGS",
        "CANCELLATION_MAILS_PER_DAY",
        "MAX_JSON_KB",
        "UPLOAD_QUOTA_MB",
    )
    for name in at_least_one:
        if config[name] < 1:
            raise ConfigError(f"{name} must be at least 1")
    if config["MAX_UPLOAD_MB"] < 1:
        raise ConfigError("MAX_UPLOAD_MB must be at least 1")
    if config["MAIL_MAX_ATTEMPTS"] < 1:
        raise ConfigError("MAIL_MAX_ATTEMPTS must be at least 1")
    if not 1 <= config["MAIL_CONCURRENCY"] <= 256:
        raise ConfigError("MAIL_CONCURRENCY must be between 1 and 256")
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
