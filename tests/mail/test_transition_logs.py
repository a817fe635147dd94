"""One log line per mail transition, with event id, kind, attempt and duration; JSON too."""

import json
import logging

import pytest

from gobarber.logs import JsonLines
from tests.streams import run_until_settled

pytestmark = pytest.mark.sends_mail


def transitions_logged(caplog):
    return [r for r in caplog.records if r.name == "gobarber.mail" and hasattr(r, "mail")]


def test_queued_retried_sent_each_log_one_line(caplog, shop, worker, smtp_server):
    caplog.set_level(logging.INFO)
    smtp_server.fail_next(1)
    canceled = shop.cancellation()
    run_until_settled(worker, lambda: smtp_server.messages, what="the retried mail")

    event_id = shop.delivery(canceled["id"]).event_id
    lines = [r.mail for r in transitions_logged(caplog) if r.mail["event_id"] == event_id]
    assert [line["state"] for line in lines] == ["queued", "retried", "sent"]
    assert all(line["kind"] == "cancellation" for line in lines)
    assert [line["attempt"] for line in lines] == [0, 1, 2]
    assert lines[1]["error"].startswith("451")
    assert lines[2]["duration_ms"] >= 0 and lines[2]["since_cancel_ms"] >= 0


def test_dead_letter_logs_a_warning_and_json_lines_carry_the_fields(
    caplog, shop, worker, smtp_server
):
    caplog.set_level(logging.INFO)
    smtp_server.refuse(shop.provider.email)
    canceled = shop.cancellation()
    worker.loop()

    event_id = shop.delivery(canceled["id"]).event_id
    [dead] = [r for r in transitions_logged(caplog) if r.mail["state"] == "dead"]
    assert dead.levelno == logging.WARNING
    line = json.loads(JsonLines().format(dead))
    assert line["event_id"] == event_id
    assert line["state"] == "dead"
    assert line["kind"] == "cancellation"
    assert line["attempt"] == 1
    assert line["error"].startswith("550")
    assert line["level"] == "warning"
