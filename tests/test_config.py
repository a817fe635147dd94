"""Configuration from the environment, and start-up as a real process.

`from_environment()` and `validate()` read and check the settings: defaults, database
URLs as hosting platforms hand them out, refusals with a clear text. Then `wsgi.py` is
started the way production starts it, as a process, against a database or a Redis that
does not answer: it must stop by itself with one line naming where it tried.
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values
from sqlalchemy import text

from gobarber import config as settings
from gobarber import create_app
from gobarber.config import ConfigError
from gobarber.extensions import db
from gobarber.testing import free_port
from tests.apps import REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
NOBODY_LISTENS = "127.0.0.1:1"
UNREACHABLE_DATABASE = f"postgresql://postgres@{NOBODY_LISTENS}/x"
UNREACHABLE_REDIS = f"redis://{NOBODY_LISTENS}/0"
START_DEADLINE_S = 60
# gunicorn's "app failed to load" status: its master stops instead of respawning workers.
APP_LOAD_ERROR = 4

# Every variable config.py reads, taken from its source so that a new one is not missed.
VARIABLES = sorted(
    set(re.findall(r'\(\s*"([A-Z][A-Z0-9_]+)"', Path(settings.__file__).read_text()))
)


@pytest.fixture
def environment(monkeypatch):
    """An environment without any of the app's variables; tests set the ones they need."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def checked():
    """Build and validate the config of the current environment."""
    config = settings.from_environment()
    settings.validate(config)
    return config


def test_the_variables_are_found():
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SHOP_SLOTS", "MAIL_TIMEOUT"} <= set(
        VARIABLES
    )


def test_defaults(environment):
    environment.setenv("APP_ENV", "development")
    config = checked()
    assert config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///gobarber.db"
    assert config["PORT"] == 3333
    assert config["APP_URL"] == "http://localhost:3333"
    assert config["REDIS_URL"] == "redis://localhost:6379/0"
    assert config["SHOP_TIMEZONE"] == "America/Sao_Paulo"
    assert config["SHOP_SLOTS"] == tuple((hour, 0) for hour in range(8, 20))
    assert config["JWT_EXPIRES_IN"] == 7 * 24 * 3600
    assert config["MAX_UPLOAD_MB"] == 5
    assert config["MAIL_DEFAULT_SENDER"] == "Equipe GoBarber <noreply@gobarber.com>"


def test_app_env_defaults_to_production(environment):
    assert settings.from_environment()["APP_ENV"] == "production"


def test_app_url_follows_the_port(environment):
    environment.setenv("PORT", "8080")
    assert settings.from_environment()["APP_URL"] == "http://localhost:8080"


def test_the_default_sqlite_database_is_shared_safely(environment, tmp_path):
    environment.setenv("APP_ENV", "development")
    environment.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'shared.db'}")
    app = create_app()
    with app.app_context():
        with db.engine.connect() as connection:
            pragmas = {
                name: connection.execute(text(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys")
            }
        db.engine.dispose()
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 30_000, "foreign_keys": 1}


@pytest.mark.parametrize(
    "url",
    [
        "postgres://shop:pa%40ss@db.example.com:6543/gobarber",
        "postgresql://shop:pa%40ss@db.example.com:6543/gobarber",
        "postgresql+psycopg://shop:pa%40ss@db.example.com:6543/gobarber",
    ],
)
def test_postgres_urls_use_psycopg_3(environment, url):
    environment.setenv("DATABASE_URL", url)
    assert settings.from_environment()["SQLALCHEMY_DATABASE_URI"] == (
        "postgresql+psycopg://shop:pa%40ss@db.example.com:6543/gobarber"
    )


def test_a_sqlite_url_is_kept(environment):
    environment.setenv("DATABASE_URL", "sqlite:////var/lib/gobarber/app.db")
    assert settings.from_environment()["SQLALCHEMY_DATABASE_URI"] == (
        "sqlite:////var/lib/gobarber/app.db"
    )


@pytest.mark.parametrize("app_env", ["production", "staging", None])
def test_outside_development_a_secret_is_required(environment, tmp_path, app_env):
    if app_env is not None:
        environment.setenv("APP_ENV", app_env)
    environment.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    with pytest.raises(ConfigError) as refused:
        create_app()
    assert str(refused.value) == (
        "SECRET_KEY (or APP_SECRET) is not set; it is required outside development"
    )


@pytest.mark.parametrize("name", ["SECRET_KEY", "APP_SECRET"])
def test_production_starts_with_either_secret(environment, tmp_path, name):
    environment.setenv("APP_ENV", "production")
    environment.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    environment.setenv(name, "a-production-secret-of-enough-length")
    app = create_app()
    assert app.config["SECRET_KEY"] == "a-production-secret-of-enough-length"


def test_development_starts_without_a_secret(environment, tmp_path):
    environment.setenv("APP_ENV", "development")
    environment.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    app = create_app()
    # The checkout's own secret, kept in instance/, never a constant of the source.
    kept = (Path(app.instance_path) / "secret_key").read_text().strip()
    assert app.config["SECRET_KEY"] == kept
    assert len(kept.encode()) >= settings.MIN_SECRET_BYTES
    assert app.test_client().get("/openapi.json").status_code == 200


def test_the_development_secret_is_random_per_checkout_and_kept(tmp_path):
    first = settings.development_secret(tmp_path / "one")
    assert settings.development_secret(tmp_path / "one") == first
    assert settings.development_secret(tmp_path / "two") != first
    assert len(first.encode()) >= settings.MIN_SECRET_BYTES
    # Only its owner may read it.
    assert (tmp_path / "one" / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("secret", ["x", "a" * 31, "é" * 15])
def test_outside_development_a_short_secret_is_refused(environment, tmp_path, secret):
    environment.setenv("APP_ENV", "production")
    environment.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    environment.setenv("SECRET_KEY", secret)
    with pytest.raises(ConfigError) as refused:
        create_app()
    assert str(refused.value).startswith("SECRET_KEY must be at least 32 bytes")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RATE_LIMIT_SIGN_IN_ACCOUNT", "five a minute", "RATE_LIMIT_SIGN_IN_ACCOUNT must read"),
        ("RATE_LIMITS", "maybe", "RATE_LIMITS must be on or off"),
        ("BCRYPT_ROUNDS", "3", "BCRYPT_ROUNDS must be between 4 and 16"),
        ("TRUSTED_PROXIES", "-1", "TRUSTED_PROXIES must be 0"),
        ("MAX_ACTIVE_BOOKINGS", "0", "MAX_ACTIVE_BOOKINGS must be at least 1"),
    ],
)
def test_abuse_settings_are_checked_at_start(environment, name, value, message):
    environment.setenv("APP_ENV", "development")
    environment.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        checked()
    assert str(refused.value).startswith(message)


def test_rate_limits_can_be_turned_off(environment):
    environment.setenv("APP_ENV", "development")
    assert checked()["RATE_LIMITS"] is True
    environment.setenv("RATE_LIMITS", "off")
    assert checked()["RATE_LIMITS"] is False


@pytest.mark.parametrize(("mail_timeout", "visibility"), [(10, 10), (10, 5), (60, 60), (60, 1)])
def test_a_visibility_timeout_not_above_the_mail_timeout_is_refused(
    environment, mail_timeout, visibility
):
    environment.setenv("APP_ENV", "development")
    environment.setenv("MAIL_TIMEOUT", str(mail_timeout))
    environment.setenv("MAIL_VISIBILITY_TIMEOUT", str(visibility))
    with pytest.raises(ConfigError) as refused:
        checked()
    assert str(refused.value) == (
        f"MAIL_VISIBILITY_TIMEOUT ({visibility}s) must exceed MAIL_TIMEOUT ({mail_timeout}s)"
    )


@pytest.mark.parametrize(("mail_timeout", "visibility"), [(10, 60), (50, 51)])
def test_a_visibility_timeout_above_the_mail_timeout_is_accepted(
    environment, mail_timeout, visibility
):
    environment.setenv("APP_ENV", "development")
    environment.setenv("MAIL_TIMEOUT", str(mail_timeout))
    environment.setenv("MAIL_VISIBILITY_TIMEOUT", str(visibility))
    assert checked()["MAIL_VISIBILITY_TIMEOUT"] == visibility


@pytest.mark.parametrize(
    ("name", "url", "message"),
    [
        ("REDIS_URL", "foo://x", "REDIS_URL cannot be used: Redis URL must specify one of"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL cannot be used: Redis URL must specify one of"),
        ("DATABASE_URL", "notadb://x", "DATABASE_URL is not a database URL"),
        ("DATABASE_URL", "::::", "DATABASE_URL is not a database URL"),
    ],
)
def test_a_malformed_url_is_one_line_at_start(environment, name, url, message):
    environment.setenv("APP_ENV", "development")
    environment.setenv(name, url)
    with pytest.raises(ConfigError) as refused:
        checked()
    assert str(refused.value).startswith(message)


def test_a_retry_backoff_longer_than_the_visibility_timeout_is_accepted(environment):
    # Retries wait outside the pending list, so the reaper's timeout does not bound them.
    environment.setenv("APP_ENV", "development")
    environment.setenv("MAIL_VISIBILITY_TIMEOUT", "60")
    environment.setenv("MAIL_RETRY_MAX", "3600")
    assert checked()["MAIL_RETRY_MAX"] == 3600


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"MAIL_RETRY_BASE": "0"}, "MAIL_RETRY_BASE must be above 0 and not above MAIL_RETRY_MAX"),
        (
            {"MAIL_RETRY_BASE": "60", "MAIL_RETRY_MAX": "30"},
            "MAIL_RETRY_BASE must be above 0 and not above MAIL_RETRY_MAX",
        ),
        ({"MAIL_DEAD_MAX": "0"}, "MAIL_DEAD_MAX must be at least 1"),
        ({"STARTUP_WAIT": "-1"}, "STARTUP_WAIT must be 0 (wait forever) or a number of seconds"),
        ({"MAIL_HEARTBEAT_INTERVAL": "0"}, "MAIL_HEARTBEAT_INTERVAL must be above 0"),
        (
            {"MAIL_HEALTH_MAX_PENDING_AGE": "60"},
            "MAIL_HEALTH_MAX_PENDING_AGE must exceed MAIL_VISIBILITY_TIMEOUT",
        ),
    ],
    ids=["retry-base-0", "base-above-max", "dead-max-0", "startup-negative", "beat-0", "age"],
)
def test_pipeline_settings_that_cannot_work_are_refused(environment, variables, message):
    environment.setenv("APP_ENV", "development")
    for name, value in variables.items():
        environment.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        checked()
    assert str(refused.value) == message


def test_the_defaults_ride_out_a_six_hour_smtp_outage(environment):
    environment.setenv("APP_ENV", "development")
    config = checked()
    base, cap = config["MAIL_RETRY_BASE"], config["MAIL_RETRY_MAX"]
    waits = [min(cap, base * 2**n) for n in range(config["MAIL_MAX_ATTEMPTS"] - 1)]
    # Retry delays are at most a fifth shorter than nominal (RETRY_JITTER).
    assert sum(waits) * 0.8 > 6 * 3600


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "not a zone", "../../etc/passwd", "UTC+3"])
def test_a_bad_shop_timezone_is_refused(environment, zone):
    environment.setenv("SHOP_TIMEZONE", zone)
    with pytest.raises(ConfigError, match="is not an IANA time zone"):
        settings.from_environment()


@pytest.mark.parametrize(
    ("slots", "message"),
    [
        ("8", "bad time '8'; use HH:MM"),
        ("08:00,,09:00", "bad time ''; use HH:MM"),
        ("eight:00", "bad time 'eight:00'; use HH:MM"),
        ("08:00:00", "bad time '08:00:00'; use HH:MM"),
        ("08:30", "'08:30'; slots start on the hour"),
        ("24:00", "'24:00'; slots start on the hour"),
        ("-1:00", "'-1:00'; slots start on the hour"),
    ],
)
def test_bad_shop_slots_are_refused(environment, slots, message):
    environment.setenv("SHOP_SLOTS", slots)
    with pytest.raises(ConfigError) as refused:
        settings.from_environment()
    assert str(refused.value).startswith("SHOP_SLOTS has ")
    assert str(refused.value).endswith(message)


def test_shop_slots_are_sorted_and_unique(environment):
    environment.setenv("SHOP_SLOTS", "14:00, 09:00,14:00,10:00")
    assert settings.from_environment()["SHOP_SLOTS"] == ((9, 0), (10, 0), (14, 0))


# ---- start-up as a real process ----------------------------------------------------


def process_environment(**variables):
    """This process's environment without the app's variables, plus `variables`."""
    env = {name: value for name, value in os.environ.items() if name not in VARIABLES}
    return {**env, "APP_ENV": "development", "PYTHONUNBUFFERED": "1", **variables}


def import_wsgi(**variables):
    return subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env=process_environment(**variables),
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_S,
    )


@pytest.mark.timeout(START_DEADLINE_S + 30)
def test_wsgi_starts_when_everything_answers(database_url):
    started = import_wsgi(DATABASE_URL=database_url, REDIS_URL=REDIS_URL)
    assert (started.returncode, started.stderr) == (0, "")


@pytest.mark.timeout(START_DEADLINE_S + 30)
def test_wsgi_waits_for_the_database_then_names_it_in_one_line(database_url):
    started = import_wsgi(DATABASE_URL=UNREACHABLE_DATABASE, REDIS_URL=REDIS_URL, STARTUP_WAIT="1")
    assert started.returncode == APP_LOAD_ERROR
    assert "Traceback" not in started.stderr
    waiting, final = started.stderr.splitlines()
    assert f"database at {NOBODY_LISTENS} unreachable: " in waiting
    assert waiting.endswith("waiting up to 1s")
    assert final.startswith(f"gobarber: database at {NOBODY_LISTENS} unreachable: ")


@pytest.mark.timeout(START_DEADLINE_S + 30)
def test_wsgi_stops_at_once_for_a_database_host_that_does_not_exist(database_url):
    # STARTUP_WAIT=0 waits forever for a service that does not answer; a wrong address
    # must not wait at all.
    started = import_wsgi(
        DATABASE_URL="postgresql://postgres@no-such-host.invalid:5432/x", REDIS_URL=REDIS_URL
    )
    assert started.returncode == APP_LOAD_ERROR
    [line] = started.stderr.splitlines()
    assert line.startswith("gobarber: database at no-such-host.invalid:5432 unreachable: ")


@pytest.mark.timeout(START_DEADLINE_S + 30)
def test_wsgi_serves_without_redis_and_says_so_in_one_line(database_url):
    started = import_wsgi(DATABASE_URL=database_url, REDIS_URL=UNREACHABLE_REDIS)
    assert started.returncode == 0
    [line] = started.stderr.splitlines()
    assert f"Redis at {NOBODY_LISTENS} unreachable: " in line
    assert line.endswith("serving anyway: cancels keep their mail in the outbox until it answers")


# The entry point's own docstring command: without --preload each worker loads the app.
PLAIN_GUNICORN = "gunicorn --bind 127.0.0.1:${PORT} wsgi:app"


def procfile_web_line():
    """The Procfile's `web:` command, or the plain one if there is no Procfile yet."""
    procfile = ROOT / "Procfile"
    lines = procfile.read_text().splitlines() if procfile.exists() else []
    commands = [line.split(":", 1)[1].strip() for line in lines if line.startswith("web:")]
    return commands[0] if commands else PLAIN_GUNICORN


@pytest.mark.parametrize(
    "command", [procfile_web_line(), PLAIN_GUNICORN], ids=["Procfile", "plain"]
)
@pytest.mark.timeout(START_DEADLINE_S + 30)
def test_gunicorn_stops_by_itself_when_the_database_does_not_answer(tmp_path, command):
    env = process_environment(
        DATABASE_URL=UNREACHABLE_DATABASE,
        STARTUP_WAIT="1",
        PORT=str(free_port()),
        PATH=f"{GUNICORN.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # gunicorn 27 opens a control socket in ~/.gunicorn unless told where.
        GUNICORN_CMD_ARGS=f"--control-socket {tmp_path / 'gunicorn.ctl'}",
    )
    server = subprocess.Popen(
        ["sh", "-c", f"exec {command}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = server.communicate(timeout=START_DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        stdout, stderr = server.communicate()
        pytest.fail(f"`{command}` kept running with an unreachable database:\n{stderr}")
    assert server.returncode == APP_LOAD_ERROR, stderr
    assert "Traceback" not in stdout + stderr, stderr
    # gunicorn's own log lines are `[time] [pid] [LEVEL] ...`; the app adds two: that it
    # waits (STARTUP_WAIT=1), then why it gives up.
    app_lines = [line for line in (stdout + stderr).splitlines() if not line.startswith("[")]
    assert len(app_lines) == 2, stderr
    assert app_lines[0].endswith("waiting up to 1s")
    assert app_lines[1].startswith(f"gobarber: database at {NOBODY_LISTENS} unreachable: ")


def test_every_setting_is_in_the_example_environment():
    example = (Path(settings.__file__).parents[1] / ".env.example").read_text()
    written = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    # APP_SECRET is SECRET_KEY's other name, mentioned beside it.
    missing = set(VARIABLES) - written - {"APP_SECRET"}
    missing |= set(settings.RATE_LIMIT_DEFAULTS) - written
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_the_example_environment_holds_the_defaults_but_app_env(environment):
    # `make run` writes a .env of APP_ENV=development only and says every other setting
    # is at its default, as .env.example shows them: each line there must read back to the
    # default, quoted values with spaces too ("600 per minute" once became "600perminute").
    example = dotenv_values(ROOT / ".env.example")
    for name, value in example.items():
        environment.setenv(name, value)
    from_example = checked()
    for name in example:
        environment.delenv(name)
    environment.setenv("APP_ENV", "development")
    assert from_example == checked()
