"""The cancellation mail reaches the provider's registered address, whatever their name says.

The name goes into the `To` header only; the delivery row and the SMTP envelope hold the
bare address. Names cannot carry control characters in, and operator views print none.
"""

import json
import re
from email.header import decode_header, make_header

import pytest
from sqlalchemy import update

from gobarber.extensions import db
from gobarber.models import MailDelivery, User
from tests.streams import abandon

pytestmark = pytest.mark.sends_mail

# Names that fooled the old `"{name} <{email}>"` recipient: a comma splits it in two, an
# address in the name (bare or after a quote) takes the envelope.
TRICKY_NAMES = ["Silva, João", "Rui <rui@evil.example>", 'Eve" <eve@evil.example>']
CONTROL_NAMES = {
    "crlf": "Zé\r\nBcc: victim@evil.example",
    "esc": "\x1b[31mZé",
    "nul": "Zé\x00",
    "c1-nel": "Zé\x85Bcc",
}


def the_mail(smtp_server):
    """The one mail the server received, with its envelope."""
    [message] = smtp_server.messages
    [envelope] = smtp_server.envelopes
    return message, envelope


def assert_delivered_to(message, envelope, *, name, address):
    assert envelope.rcpt_tos == [address]
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (name, address)


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_the_mail_goes_to_the_registered_address_whatever_the_name(
    shop, api, worker, smtp_server, name
):
    provider = api.provider(name)
    canceled = shop.cancellation(provider=provider)

    worker.loop()

    message, envelope = the_mail(smtp_server)
    assert_delivered_to(message, envelope, name=name, address=provider.email)
    delivery = shop.delivery(canceled["id"])
    assert (delivery.recipient, delivery.status) == (provider.email, "sent")


def test_a_long_name_and_a_long_address_still_cancel_and_mail(app, shop, api, worker, smtp_server):
    name = ("Barbeiro Zé da Silva " * 13)[:255]
    # The API takes at most 254 characters (email-validator), but the column holds 320 and
    # rows from before that check may be longer: put a 300-character address in directly.
    domain = ".".join(["d" * 63, "e" * 63, "f" * 63]) + ".example"
    address = "p" * (300 - len(domain) - 1) + "@" + domain
    assert (len(name), len(address)) == (255, 300)
    provider = api.provider(name)
    with app.app_context():
        db.session.execute(update(User).where(User.id == provider.id).values(email=address))
        db.session.commit()

    canceled = shop.cancellation(provider=provider)  # asserts the 200

    worker.loop()
    message, envelope = the_mail(smtp_server)
    assert envelope.rcpt_tos == [address]
    [to] = message["To"].addresses
    assert to.addr_spec == address
    # The name takes several RFC 2047 words, and the whitespace between two words is no
    # part of it; Python 3.11's `policy.default` keeps it, so read it as RFC 2047 says.
    raw_to = dict(message.raw_items())["To"]
    assert str(make_header(decode_header(raw_to))) == f"{name} <{address}>"
    words = re.findall(r"=\?[^?]+\?[bq]\?[^?]*\?=", raw_to, flags=re.IGNORECASE)
    assert words and max(map(len, words)) <= 75  # RFC 2047's limit on an encoded word
    assert shop.delivery(canceled["id"]).status == "sent"


@pytest.mark.parametrize("name", ["Barbeiro Zé", *TRICKY_NAMES])
def test_a_row_of_the_old_name_and_address_form_reaches_the_provider(
    app, shop, api, worker, smtp_server, name
):
    provider = api.provider(name)
    canceled = shop.cancellation(provider=provider)
    with app.app_context():
        db.session.execute(
            update(MailDelivery)
            .where(MailDelivery.appointment_id == canceled["id"])
            .values(recipient=f"{name} <{provider.email}>")
        )
        db.session.commit()

    worker.loop()

    message, envelope = the_mail(smtp_server)
    assert_delivered_to(message, envelope, name=name, address=provider.email)
    assert shop.delivery(canceled["id"]).status == "sent"


@pytest.mark.parametrize("name", CONTROL_NAMES.values(), ids=CONTROL_NAMES.keys())
def test_sign_up_refuses_a_name_with_control_characters(client, name):
    body = {"name": name, "email": "ze@barber.example.com", "password": "secret123"}

    refused = client.post("/users", json=body)

    assert (refused.status_code, refused.json["error"]) == (400, "Validation fails")
    assert list(refused.json["fields"]) == ["name"]
    signed = client.post("/sessions", json={"email": body["email"], "password": "secret123"})
    assert signed.status_code == 401


@pytest.mark.parametrize("name", CONTROL_NAMES.values(), ids=CONTROL_NAMES.keys())
def test_profile_refuses_a_name_with_control_characters(client, api, name):
    person = api.person("Unchanged")

    refused = client.put("/users", json={"name": name}, headers=person.headers)

    assert (refused.status_code, refused.json["error"]) == (400, "Validation fails")
    assert list(refused.json["fields"]) == ["name"]
    signed = client.post("/sessions", json={"email": person.email, "password": person.password})
    assert signed.json["user"]["name"] == "Unchanged"


@pytest.fixture
def flask_cli(app):
    runner = app.test_cli_runner()

    def run(*args):
        result = runner.invoke(args=list(args))
        assert result.exception is None, result.output
        return result.output

    return run


def test_queue_commands_print_stored_control_characters_escaped(
    app, shop, api, worker, smtp_server, queue, flask_cli
):
    provider = api.provider("Barbeiro Recusado")
    # A name stored before names were checked, and a server whose refusal says the same.
    with app.app_context():
        db.session.execute(
            update(User).where(User.id == provider.id).values(name="\x1b[31mRui\x07")
        )
        db.session.commit()
    smtp_server.refuse(provider.email, "550 5.1.1 \x1b[31mNo such user\x7f")
    shop.cancellation(provider=provider)
    worker.loop()  # dead-lettered
    shop.cancellation()
    abandon(queue, consumer="gone\x1b]0;owned\x07\x9bworker", idle_ms=600_000)

    dead = flask_cli("queue", "dead")
    status = flask_cli("queue", "status")
    as_json = flask_cli("queue", "dead", "--json") + flask_cli("queue", "status", "--json")

    for output in (dead, status, as_json):
        assert not any(ord(c) < 0x20 and c != "\n" or 0x7F <= ord(c) <= 0x9F for c in output), (
            output
        )
    assert "550 5.1.1 \\x1b[31mNo such user\\x7f" in dead
    assert "gone\\x1b]0;owned\\x07\\x9bworker" in status
    [letter] = json.loads(flask_cli("queue", "dead", "--json"))
    assert letter["error"].startswith("550 5.1.1 \x1b[31mNo such user\x7f")  # data intact
