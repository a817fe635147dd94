"""Fixtures of the mail pipeline, for every test that asks for them: the consumers, a
shop that cancels through the API, and the real processes with short timeouts.

Registered in tests/conftest.py as a plugin. A test module whose app must send to the test
SMTP server says so with `pytestmark = pytest.mark.sends_mail`: the `app` fixture then
applies `pipeline_config`.
"""

import pytest
from sqlalchemy import select

from consumers.loop import Stop
from consumers.reaper import Reaper
from consumers.worker import MailWorker
from gobarber.extensions import db, mail_queue, redis_store
from gobarber.models import MailDelivery
from gobarber.testing import Processes


@pytest.fixture
def pipeline_config(smtp_server):
    """Settings that send to the test SMTP server and retry within milliseconds."""
    return {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": smtp_server.port,
        "MAIL_TIMEOUT": 5,
        "MAIL_RETRY_BASE": 0.01,
        "MAIL_RETRY_MAX": 0.02,
        "MAIL_BLOCK_MS": 50,
        "MAIL_BATCH_SIZE": 10,
        # These tests follow cancellation mails; reminders have their own
        # (tests/mail/test_reminders.py), which turn them on.
        "MAIL_REMINDER_BEFORE": 0,
    }


@pytest.fixture
def redis_conn(app):
    return redis_store.get(app)


@pytest.fixture
def queue(app):
    return mail_queue.get(app)


@pytest.fixture
def worker(app):
    worker = MailWorker(app, stop=Stop(), name="worker-test")
    worker.initialize()
    return worker


@pytest.fixture
def reaper(app):
    reaper = Reaper(app, stop=Stop(), name="reaper-test")
    reaper.initialize()
    return reaper


class Shop:
    """Book and cancel through the API; read deliveries back from the database."""

    def __init__(self, app, client, api, slot):
        self.app, self.client, self.api, self.slot = app, client, api, slot
        self.provider = api.provider("Barbeiro Zé")
        self.customer = api.person("Cliente Ana")
        self.hour = 8

    def cancellation(self, provider=None):
        """Book a fresh slot and cancel it; return the DELETE response's JSON."""
        provider = provider or self.provider
        self.hour += 1
        if self.hour > 19:
            self.hour, self.slot_day = 9, getattr(self, "slot_day", 2) + 1
        when = self.slot(days=getattr(self, "slot_day", 2), hour=self.hour)
        booked = self.api.book(self.customer, provider, when)
        assert booked.status_code == 200, booked.json
        canceled = self.client.delete(
            f"/appointments/{booked.json['id']}", headers=self.customer.headers
        )
        assert canceled.status_code == 200, canceled.json
        return canceled.json

    def delivery(self, appointment_id):
        with self.app.app_context():
            query = select(MailDelivery).where(MailDelivery.appointment_id == appointment_id)
            row = db.session.scalar(query)
            db.session.expunge_all()
            return row

    def mail_status(self, appointment_id):
        shown = self.client.get(f"/appointments/{appointment_id}", headers=self.customer.headers)
        return shown.json["cancellation_mail"]

    def notifications(self, person=None):
        person = person or self.customer
        return self.client.get("/notifications", headers=person.headers).json


@pytest.fixture
def flask_cli(app):
    """Run a `flask ...` command of the app; a command that crashed fails the test."""
    runner = app.test_cli_runner()

    def run(*args):
        result = runner.invoke(args=list(args))
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result

    return run


@pytest.fixture
def shop(app, client, api, slot):
    return Shop(app, client, api, slot)


@pytest.fixture
def pipeline_env(app, smtp_server, tmp_path):
    """Settings for the processes: this test's database, Redis prefix and SMTP server."""
    return {
        "APP_ENV": "production",
        "SECRET_KEY": app.config["SECRET_KEY"],
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app.config["REDIS_URL"],
        "MAIL_STREAM_PREFIX": app.config["MAIL_STREAM_PREFIX"],
        "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": smtp_server.port,
        "MAIL_TIMEOUT": 2,
        "MAIL_VISIBILITY_TIMEOUT": 3,
        "MAIL_RETRY_BASE": 0.1,
        "MAIL_RETRY_MAX": 1,
        "MAIL_BLOCK_MS": 200,
        "MAIL_BATCH_SIZE": 10,
        "REAPER_INTERVAL": 0.5,
        "MAIL_RELAY_AFTER": 1,
        "MAIL_REPUBLISH_AFTER": 2,
        "LOG_LEVEL": "INFO",
        # As in tests/apps.py: cheap hashes, and no limits but where a test sets them.
        "BCRYPT_ROUNDS": 4,
        "RATE_LIMITS": "off",
        "MAX_ACTIVE_BOOKINGS": 10_000,
        "CANCELLATION_MAILS_PER_DAY": 10_000,
        # As in `pipeline_config`: tests/e2e/test_reminders.py turns reminders on.
        "MAIL_REMINDER_BEFORE": 0,
    }


@pytest.fixture
def processes(pipeline_env, tmp_path):
    running = Processes(pipeline_env, tmp_path / "logs")
    yield running
    running.stop_all()
