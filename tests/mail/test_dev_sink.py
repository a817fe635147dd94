"""The development SMTP sink (`python -m gobarber.mail.sink`) and its reserved domains.

Its handler runs in this process on a free port, driven by smtplib as any client would;
then the worker sends to it through the real pipeline (Redis, the database), and the
@fail.example and @flaky.example providers end as the README promises a newcomer.
"""

import smtplib
import threading
import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest

from gobarber.mail.sink import Sink
from gobarber.mail.smtp import is_permanent
from gobarber.testing import free_port, wait_until
from tests.people import Person
from tests.streams import run_until_settled

# Short enough for the suite, long enough to tell from a prompt answer.
SLOW_S = 1.0


@pytest.fixture
def sink(tmp_path):
    """The sink's handler behind aiosmtpd on a free port, as `make run` starts it."""
    from aiosmtpd.controller import Controller

    controller = Controller(
        Sink(tmp_path / "mailbox", slow_seconds=SLOW_S), hostname="127.0.0.1", port=free_port()
    )
    controller.start()
    yield controller
    controller.stop()


def send(sink, recipients, subject="Agendamento cancelado"):
    """Send one mail to `recipients` over SMTP; return the refused ones, as smtplib does."""
    message = EmailMessage()
    message["From"] = "Equipe GoBarber <noreply@gobarber.com>"
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message.set_content("Houve um cancelamento de horário.")
    with smtplib.SMTP(sink.hostname, sink.port, timeout=10) as client:
        return client.send_message(message)


def saved(sink):
    """The mails the sink kept in its folder, oldest first."""
    paths = sorted(sink.handler.folder.glob("*.eml"))
    return [message_from_bytes(path.read_bytes(), policy=default_policy) for path in paths]


def refusal(sink, address):
    """Send to `address` alone, which must be refused; return (code, reply) for it."""
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(sink, [address])
    return refused.value.recipients[address]


def test_a_plain_address_is_saved_as_an_eml_file(sink, capsys):
    assert send(sink, ["rafael.souza@example.com"]) == {}

    [mail] = saved(sink)
    assert mail["To"] == "rafael.souza@example.com"
    assert mail["Subject"] == "Agendamento cancelado"
    assert mail.get_content().strip() == "Houve um cancelamento de horário."
    printed = capsys.readouterr().out
    assert "mail sink: 'Agendamento cancelado' for rafael.souza@example.com saved as" in printed


def test_fail_example_is_refused_at_rcpt_with_550_every_time(sink, capsys):
    for _ in range(3):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(sink, ["bruno@fail.example"])
        code, reply = refused.value.recipients["bruno@fail.example"]
        assert code == 550
        assert reply.decode() == (
            "5.1.1 <bruno@fail.example>: mailbox refused: @fail.example addresses always fail "
            "(development sink)"
        )
        # The worker reads this as permanent: a dead letter at once, no retry.
        assert is_permanent(refused.value)

    assert saved(sink) == []
    assert "mail sink: refused bruno@fail.example (550, @fail.example always fails)" in (
        capsys.readouterr().out
    )


def test_flaky_example_answers_451_twice_then_accepts(sink, capsys):
    for attempt in (1, 2):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(sink, ["dora@flaky.example"])
        code, reply = refused.value.recipients["dora@flaky.example"]
        assert code == 451
        assert reply.decode().startswith("4.3.0 <dora@flaky.example>: try again later")
        assert f"this was attempt {attempt}" in reply.decode()
        # The worker reads this as transient: retried after a backoff.
        assert not is_permanent(refused.value)
        assert saved(sink) == []

    assert send(sink, ["dora@flaky.example"]) == {}

    [mail] = saved(sink)
    assert mail["To"] == "dora@flaky.example"
    out = capsys.readouterr().out
    assert "refused dora@flaky.example for now (451, @flaky.example, attempt 1 of 3)" in out
    assert "accepted dora@flaky.example (@flaky.example, attempt 3 of 3)" in out


def test_flaky_example_counts_each_address_on_its_own_and_again_after_each_mail(sink):
    assert refusal(sink, "dora@flaky.example")[0] == 451
    assert refusal(sink, "eli@flaky.example")[0] == 451  # eli's first, not dora's third
    assert refusal(sink, "DORA@Flaky.Example")[0] == 451  # the same address, any case
    assert send(sink, ["dora@flaky.example"]) == {}
    assert refusal(sink, "eli@flaky.example")[0] == 451
    assert send(sink, ["eli@flaky.example"]) == {}

    # The next mail to dora goes through the same story: every mail is retried twice.
    assert refusal(sink, "dora@flaky.example")[0] == 451
    assert refusal(sink, "dora@flaky.example")[0] == 451
    assert send(sink, ["dora@flaky.example"]) == {}
    assert [mail["To"] for mail in saved(sink)] == [
        "dora@flaky.example",
        "eli@flaky.example",
        "dora@flaky.example",
    ]


def test_slow_example_is_answered_only_after_the_configured_wait(sink):
    started = time.monotonic()
    assert send(sink, ["carla@slow.example"]) == {}
    waited = time.monotonic() - started

    assert waited >= SLOW_S
    [mail] = saved(sink)
    assert mail["To"] == "carla@slow.example"


def test_a_slow_mail_does_not_hold_up_the_other_sessions(sink, capsys):
    slow = threading.Thread(target=send, args=(sink, ["carla@slow.example"]), daemon=True)
    slow.start()
    printed = []

    def holding_the_answer():
        printed.append(capsys.readouterr().out)
        return "answering the mail for carla@slow.example in 1s" in "".join(printed)

    wait_until(holding_the_answer, timeout=10, what="the sink to hold the @slow.example answer")

    started = time.monotonic()
    assert send(sink, ["rafael.souza@example.com"]) == {}
    assert time.monotonic() - started < SLOW_S / 2
    slow.join(timeout=10)
    assert not slow.is_alive()
    assert [mail["To"] for mail in saved(sink)] == [
        "rafael.souza@example.com",
        "carla@slow.example",
    ]


def test_mixed_recipients_are_answered_one_by_one(sink, capsys):
    recipients = ["rafael.souza@example.com", "bruno@fail.example", "dora@flaky.example"]
    started = time.monotonic()
    refused = send(sink, [*recipients, "carla@slow.example"])
    waited = time.monotonic() - started

    assert {address: code for address, (code, _) in refused.items()} == {
        "bruno@fail.example": 550,
        "dora@flaky.example": 451,
    }
    assert waited >= SLOW_S  # one accepted recipient is @slow.example
    [mail] = saved(sink)
    assert mail["To"] == ", ".join([*recipients, "carla@slow.example"])
    assert "for rafael.souza@example.com, carla@slow.example saved as" in capsys.readouterr().out

    # Every recipient refused: smtplib never sends the message, and nothing is saved.
    with pytest.raises(smtplib.SMTPRecipientsRefused) as everyone:
        send(sink, ["bruno@fail.example", "eli@flaky.example"])
    assert {code for code, _ in everyone.value.recipients.values()} == {550, 451}
    assert not is_permanent(everyone.value)  # a 451 among them: worth a retry
    assert len(saved(sink)) == 1


# The worker sending to the sink through the real pipeline.


@pytest.fixture
def config_overrides(sink):
    # On top of `pipeline_config` (the `sends_mail` marker): the sink instead of the test
    # SMTP server, and retries due within a tenth of a second.
    return {"MAIL_PORT": sink.port, "MAIL_RETRY_BASE": 0.05, "MAIL_RETRY_MAX": 0.1}


def provider_at(client, name, email):
    """Sign a provider up under `email` and in, through the API."""
    body = {"name": name, "email": email, "password": "secret123", "provider": True}
    created = client.post("/users", json=body)
    assert created.status_code == 200, created.json
    signed = client.post("/sessions", json={"email": email, "password": "secret123"})
    assert signed.status_code == 200, signed.json
    return Person(created.json, signed.json["token"], "secret123")


@pytest.mark.sends_mail
def test_a_provider_at_fail_example_is_dead_lettered_and_the_customer_told(
    shop, client, worker, sink, redis_conn, queue
):
    diego = provider_at(client, "Diego Almeida", "diego.almeida@fail.example")
    canceled = shop.cancellation(provider=diego)

    run_until_settled(
        worker,
        lambda: shop.delivery(canceled["id"]).status == "failed",
        what="the @fail.example mail to fail",
    )

    delivery = shop.delivery(canceled["id"])
    assert delivery.attempts == 1  # permanent: never retried
    assert delivery.last_error.startswith("550 5.1.1 <diego.almeida@fail.example>: mailbox refused")
    [(_, dead)] = redis_conn.xrange(queue.dead_key)
    assert dead["event_id"] == delivery.event_id
    assert dead["error"].startswith("550 5.1.1")
    assert shop.mail_status(canceled["id"])["status"] == "failed"
    [notice] = shop.notifications()
    assert notice["content"].startswith("Não foi possível avisar Diego Almeida do cancelamento")
    assert saved(sink) == []


@pytest.mark.sends_mail
def test_a_provider_at_flaky_example_gets_the_mail_after_two_retries(
    shop, client, worker, sink, redis_conn, queue
):
    bruno = provider_at(client, "Bruno Carvalho", "bruno.carvalho@flaky.example")
    canceled = shop.cancellation(provider=bruno)

    run_until_settled(
        worker,
        lambda: shop.delivery(canceled["id"]).status == "sent",
        what="the @flaky.example mail to be sent",
    )

    delivery = shop.delivery(canceled["id"])
    assert delivery.attempts == 3  # two 451s, then accepted
    [mail] = saved(sink)
    assert mail["To"] == "Bruno Carvalho <bruno.carvalho@flaky.example>"
    assert mail["Subject"] == "Agendamento cancelado"
    assert redis_conn.xrange(queue.dead_key) == []
    assert shop.notifications() == []
