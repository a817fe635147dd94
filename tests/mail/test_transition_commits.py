"""A transition is logged (and counted) only once the database holds it.

A handler on the transition logger reads the delivery row over a connection of its own,
which sees committed data only, at the moment each line is written.
"""

import logging

import pytest
from sqlalchemy import text

from gobarber.extensions import db
from tests.streams import abandon_on_its_last_delivery, run_until_settled

pytestmark = pytest.mark.sends_mail

# What the committed row must say when each transition is logged.
COMMITTED_STATUS = {"queued": "queued", "retried": "queued", "sent": "sent", "dead": "failed"}


class CommittedRows(logging.Handler):
    """Record, for each transition line, the delivery row as another connection sees it."""

    def __init__(self, app):
        super().__init__()
        self.app = app
        self.seen = []

    def emit(self, record):
        mail = getattr(record, "mail", None)
        if mail is None:
            return
        with self.app.app_context(), db.engine.connect() as other:
            row = other.execute(
                text("SELECT status, attempts FROM mail_deliveries WHERE event_id = :event"),
                {"event": mail["event_id"]},
            ).one()
        self.seen.append((mail["state"], mail["attempt"], row.status, row.attempts))


@pytest.fixture
def committed(app):
    handler = CommittedRows(app)
    logger = logging.getLogger("gobarber.mail")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield handler.seen
    logger.removeHandler(handler)
    logger.setLevel(previous)


def assert_committed_first(seen):
    assert seen, "no transition was logged"
    for state, attempt, status, attempts in seen:
        assert (status, attempts) == (COMMITTED_STATUS[state], attempt), state


def test_the_worker_logs_queued_retried_sent_and_dead_after_their_commit(
    committed, shop, worker, smtp_server, api
):
    smtp_server.fail_next(1)
    shop.cancellation()
    run_until_settled(worker, lambda: smtp_server.messages, what="the mail after one 451")
    refused = api.provider("Barbeiro Recusado")
    smtp_server.refuse(refused.email)
    shop.cancellation(provider=refused)
    worker.loop()

    assert [state for state, *_ in committed] == ["queued", "retried", "sent", "queued", "dead"]
    assert_committed_first(committed)


def test_the_reaper_logs_a_dead_letter_after_its_commit(committed, app, shop, reaper, queue):
    canceled = shop.cancellation()
    event_id = shop.delivery(canceled["id"]).event_id
    abandon_on_its_last_delivery(queue, event_id, app.config["MAIL_MAX_ATTEMPTS"])

    reaper.loop()

    assert [state for state, *_ in committed] == ["queued", "dead"]
    assert_committed_first(committed)
