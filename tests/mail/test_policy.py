"""The delivery policy and the backoff, as pure functions: no Redis, no database."""

import smtplib
from types import SimpleNamespace

import pytest
import redis
from sqlalchemy.exc import OperationalError

from gobarber.backoff import compute_backoff
from gobarber.mail.messages import Unrenderable
from gobarber.mail.policy import Abandoned, Action, DeliveryPolicy
from gobarber.mail.queue import Entry

EVENT = "6f1c2d7e-8a8b-4c1e-9a47-0f4b1d5e2c3a"
POLICY = DeliveryPolicy(max_attempts=3, retry_base=1.0, retry_max=30.0)


def entry(redeliveries=None, **fields):
    body = {"event_id": EVENT, "kind": "cancellation", **fields}
    if redeliveries is not None:
        body["redeliveries"] = str(redeliveries)
    return Entry("{p}:mail:default", "1-0", body)


def row(status="queued", attempts=0, last_error=None):
    return SimpleNamespace(status=status, attempts=attempts, last_error=last_error)


def refused(code):
    return smtplib.SMTPRecipientsRefused({"zé@barber.example.com": (code, b"No such user")})


# ---- before sending: the worker's first look ---------------------------------------


def test_a_queued_row_is_sent():
    assert POLICY.decide(entry(), row()).action is Action.SEND


def test_an_entry_redis_lost_the_body_of_is_acknowledged_for_the_relay():
    decision = POLICY.decide(Entry("s", "1-0", None), None)
    assert decision.action is Action.ACK


@pytest.mark.parametrize(
    "fields",
    [{"garbage": "x"}, {"event_id": "not-a-uuid"}, {"event_id": EVENT.upper()}],
)
def test_an_unreadable_entry_is_dead_at_once(fields):
    decision = POLICY.decide(Entry("s", "1-0", fields), None)
    assert decision.action is Action.DEAD
    assert decision.reason.startswith("unreadable entry")
    assert not decision.fail_row


def test_an_event_without_a_row_is_dead():
    decision = POLICY.decide(entry(), None)
    assert (decision.action, decision.reason) == (
        Action.DEAD,
        "no delivery recorded for this event",
    )


def test_an_event_already_sent_is_acknowledged_unsent():
    assert POLICY.decide(entry(), row("sent", attempts=1)).action is Action.ACK


def test_a_mail_no_longer_owed_is_void_and_never_sent():
    decision = POLICY.decide(entry(), row(), void="appointment cancelled")
    assert (decision.action, decision.reason) == (Action.VOID, "appointment cancelled")
    # Even out of attempts: a mail nobody is owed is no dead letter.
    assert POLICY.decide(entry(), row(attempts=3), void="used").action is Action.VOID


def test_a_void_row_is_acknowledged_when_its_event_comes_again():
    assert POLICY.decide(entry(), row("canceled"), void="used").action is Action.ACK
    assert POLICY.decide(entry(), row("canceled"), Abandoned()).action is Action.ACK


@pytest.mark.parametrize("error", [None, Abandoned()])
def test_an_event_held_for_an_operator_is_acknowledged_unsent(error):
    # Only a release publishes a held row; an entry of one on a stream is no debt.
    assert POLICY.decide(entry(), row("held"), error).action is Action.ACK


def test_an_event_already_failed_is_dead_without_telling_the_customer_again():
    decision = POLICY.decide(entry(), row("failed", attempts=3, last_error="550 no"))
    assert (decision.action, decision.reason, decision.fail_row) == (Action.DEAD, "550 no", False)


def test_a_row_out_of_attempts_is_dead_and_failed():
    decision = POLICY.decide(entry(), row(attempts=3, last_error="451 later"))
    assert (decision.action, decision.reason, decision.fail_row) == (Action.DEAD, "451 later", True)


def test_an_entry_handed_out_more_than_the_limit_is_dead():
    # Three deliveries are allowed: redeliveries 2 is the third, 3 would be the fourth.
    assert POLICY.decide(entry(redeliveries=2), row()).action is Action.SEND
    decision = POLICY.decide(entry(redeliveries=3), row())
    assert (decision.action, decision.fail_row) == (Action.DEAD, True)
    assert decision.reason == "too many deliveries"


def test_a_redelivery_count_that_is_not_a_number_counts_as_none():
    assert POLICY.decide(entry(redeliveries="many"), row()).action is Action.SEND


# ---- after a failed attempt: the row's attempts include it --------------------------


def test_a_transient_failure_is_retried_after_a_backoff():
    decision = POLICY.decide(entry(), row(attempts=1), smtplib.SMTPDataError(451, b"later"))
    assert decision.action is Action.RETRY
    assert decision.reason == "451 later"
    assert decision.attempt_failed
    assert 0.5 <= decision.delay <= 1.0


def test_a_refused_connection_is_transient():
    decision = POLICY.decide(entry(), row(attempts=1), ConnectionRefusedError(111, "refused"))
    assert decision.action is Action.RETRY
    assert "ConnectionRefusedError" in decision.reason


def test_a_permanent_refusal_is_dead_at_the_first_attempt():
    decision = POLICY.decide(entry(), row(attempts=1), refused(550))
    assert (decision.action, decision.fail_row, decision.attempt_failed) == (
        Action.DEAD,
        True,
        True,
    )
    assert decision.reason.startswith("550 No such user")


def test_a_4xx_recipient_refusal_is_transient():
    assert POLICY.decide(entry(), row(attempts=1), refused(450)).action is Action.RETRY


def test_the_last_attempt_failing_is_dead():
    decision = POLICY.decide(entry(), row(attempts=3), smtplib.SMTPDataError(451, b"later"))
    assert (decision.action, decision.fail_row, decision.reason) == (Action.DEAD, True, "451 later")


def test_a_mail_that_cannot_be_rendered_is_dead_without_a_failed_attempt():
    decision = POLICY.decide(entry(), row(), Unrenderable("appointment 7 not found"))
    assert (decision.action, decision.reason) == (Action.DEAD, "appointment 7 not found")
    assert decision.fail_row and not decision.attempt_failed


def test_an_unexpected_error_is_an_attempt_like_any_other():
    decision = POLICY.decide(entry(), row(attempts=1), KeyError("provider"))
    assert decision.action is Action.RETRY
    assert decision.reason.startswith("KeyError")


@pytest.mark.parametrize(
    "error",
    [redis.ConnectionError("gone"), OperationalError("SELECT 1", {}, Exception("down"))],
)
def test_a_database_or_redis_failure_leaves_the_entry_pending(error):
    decision = POLICY.decide(entry(), row(attempts=1), error)
    assert decision.action is Action.LEAVE
    assert not decision.attempt_failed


# ---- the reaper's view: the consumer holding it went silent ------------------------


def test_an_abandoned_entry_is_requeued_for_any_consumer():
    assert POLICY.decide(entry(), row(attempts=1), Abandoned()).action is Action.REQUEUE


def test_an_abandoned_entry_on_its_last_delivery_is_dead():
    # Its third delivery was abandoned; a fourth would exceed the limit of three.
    assert POLICY.decide(entry(redeliveries=1), row(), Abandoned()).action is Action.REQUEUE
    decision = POLICY.decide(entry(redeliveries=2), row(), Abandoned())
    assert (decision.action, decision.fail_row) == (Action.DEAD, True)
    assert decision.reason == "gave up after 3 deliveries"


def test_an_abandoned_entry_whose_mail_was_sent_is_acknowledged():
    assert POLICY.decide(entry(), row("sent", attempts=1), Abandoned()).action is Action.ACK


def test_worker_and_reaper_agree_on_the_limit():
    # Whatever the count, the worker never sends an entry the reaper would have given up.
    for redeliveries in range(6):
        reaper = POLICY.decide(entry(redeliveries=redeliveries), row(), Abandoned()).action
        worker = POLICY.decide(entry(redeliveries=redeliveries + 1), row()).action
        assert (reaper is Action.REQUEUE) == (worker is Action.SEND), redeliveries


# ---- the one backoff ----------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 60, 10_000])
def test_backoff_stays_between_half_the_delay_and_the_delay(attempt):
    delay = min(30.0, 0.5 * 2 ** min(attempt - 1, 62))
    for _ in range(200):
        assert delay / 2 <= compute_backoff(attempt, base=0.5, cap=30.0) <= delay


def test_backoff_is_never_zero_and_grows_to_its_cap():
    waits = [compute_backoff(n, base=0.01, cap=0.08, jitter=0.0) for n in range(1, 8)]
    assert waits == [0.01, 0.02, 0.04, 0.08, 0.08, 0.08, 0.08]
    assert min(compute_backoff(1, base=0.01, cap=0.08) for _ in range(500)) > 0


def test_backoff_spreads_processes_that_failed_together():
    assert len({compute_backoff(4, base=1, cap=30) for _ in range(50)}) > 40


def test_backoff_counts_failures_from_one():
    with pytest.raises(ValueError):
        compute_backoff(0, base=1, cap=30)
