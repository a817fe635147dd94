"""Render mail events into messages, from the templates in `templates/mail/`.

A message's `To` header names the person; its SMTP envelope is the bare address the
delivery row holds, so nothing a person writes in their name can redirect a mail.
"""

import re
from email.header import Header
from email.policy import compat32
from email.utils import formataddr, parseaddr

from flask import current_app, render_template
from flask_mail import Message
from sqlalchemy.orm import joinedload

from gobarber.extensions import db
from gobarber.models import Appointment
from gobarber.models.mail_delivery import MailKind
from gobarber.shop_time import describe_pt_br, now

SUBJECTS = {
    MailKind.CANCELLATION: "Agendamento cancelado",
    MailKind.PASSWORD_RESET: "[GoBarber] Recuperação de senha",
    MailKind.REMINDER: "Lembrete de agendamento",
}


# In a name, a line break (any that str.splitlines knows) would end the To header and
# start another; no control character belongs in a header. Names are refused with them
# on the way in; this is for names stored before that check.
_NOT_IN_HEADER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class Unrenderable(Exception):
    """The event names something that is gone or unknown; sending it can never work."""


# How a message is written out: lines end in CRLF and no header is refolded (every one
# is encoded already). compat32, not `policy.SMTP.clone(refold_source="none")`, which
# writes the same text but for the folding of Content-Type, in twice the time: the
# modern policy parses a header again each time the generator reads it.
_WIRE = compat32.clone(linesep="\r\n", max_line_length=0)


class _Message(Message):
    """Flask-Mail's message with a `To` header of our own making.

    Flask-Mail writes `To` from `recipients` and derives the envelope from them too,
    parsing each entry back into an address (`sanitize_address`, then smtplib's
    `quoteaddr`). So `recipients` holds the bare address, which survives that parse as it
    is, and the display form replaces the header once the MIME message is built.
    """

    def __init__(self, *, to, **kwargs):
        super().__init__(**kwargs)
        self.to = to

    def _message(self):
        message = super()._message()
        # Flask-Mail ends on `policy.SMTP`, whose folder re-encodes a long or non-ASCII
        # header, and wrongly: "Silva, João" goes out as `Silva, =?utf-8?q?Jo...`, two
        # addresses. Every header here is encoded already (by Flask-Mail, and To by
        # `_to_header`), so To is stored as written and no header is refolded.
        message.policy = compat32
        message.replace_header("To", self.to)
        message.policy = _WIRE
        return message


def message_id(event_id):
    """Derive the Message-ID from the event id, so a resent event keeps its identity."""
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "gobarber.local"
    return f"<{event_id}@{domain}>"


def _appointment_of(delivery):
    # One query for the appointment and both people, none when the session has them.
    appointment = db.session.get(
        Appointment,
        delivery.appointment_id or 0,
        options=[joinedload(Appointment.provider), joinedload(Appointment.user)],
    )
    if appointment is None:
        raise Unrenderable(f"appointment {delivery.appointment_id} not found")
    return appointment


def _cancellation_context(delivery):
    appointment = _appointment_of(delivery)
    provider = appointment.provider
    context = {
        "provider": provider.name,
        "user": appointment.user.name,
        "when": describe_pt_br(appointment.date),
    }
    return (provider.name, _address(delivery, provider)), context


def _address(delivery, provider):
    # Rows written before the name and the address were kept apart hold "Name <address>",
    # which no bare address can look like (no "<" without quotes, and we accept none). We
    # send those to the provider's registered address rather than parse them: parsing is
    # what sent "Silva, João" to "Silva" and "Rui <rui@evil.example>" to that address.
    if "<" in delivery.recipient:
        return provider.email
    return delivery.recipient


def _password_reset_context(delivery):
    reset = delivery.password_reset
    if reset is None:
        raise Unrenderable(f"password reset {delivery.password_reset_id} not found")
    token = reset.token(current_app.config["SECRET_KEY"])
    minutes = max(1, round((reset.expires_at - reset.created_at).total_seconds() / 60))
    hours, rest = divmod(minutes, 60)
    if rest:
        expires_in = f"{minutes} minuto{'s' if minutes > 1 else ''}"
    else:
        expires_in = f"{hours} hora{'s' if hours > 1 else ''}"
    context = {
        "name": reset.user.name,
        "link": f"{current_app.config['APP_WEB_URL']}/reset-password?token={token}",
        "expires_in": expires_in,
    }
    return (reset.user.name, delivery.recipient), context


def _reminder_context(delivery):
    appointment = _appointment_of(delivery)
    customer = appointment.user
    context = {
        "customer": customer.name,
        "provider": appointment.provider.name,
        "when": describe_pt_br(appointment.date),
    }
    return (customer.name, delivery.recipient), context


# Each kind: (name, address) of the recipient and the templates' context.
CONTEXTS = {
    MailKind.CANCELLATION: _cancellation_context,
    MailKind.PASSWORD_RESET: _password_reset_context,
    MailKind.REMINDER: _reminder_context,
}


def _reset_void(delivery):
    reset = delivery.password_reset
    if reset is None:
        return None  # not a void mail but an unrenderable one: the render says so
    if reset.used_at is not None:
        return "the reset link was used, or replaced by a later reset, before the mail went"
    if reset.expires_at <= now():
        return "the reset link expired before the mail went"
    return None


def _reminder_void(delivery):
    appointment = db.session.get(Appointment, delivery.appointment_id or 0)
    if appointment is None:
        return None  # rendering says so, as for any mail of a vanished appointment
    if appointment.canceled_at is not None:
        return "appointment canceled"
    if appointment.date <= now():
        return "appointment already started"
    return None


# Each kind that can stop being owed before it goes: why, or None while it is owed.
VOID_RULES = {
    MailKind.PASSWORD_RESET: _reset_void,
    MailKind.REMINDER: _reminder_void,
}


def void_reason(delivery):
    """Tell why a delivery's mail is no longer owed (it must never go), or None."""
    rule = VOID_RULES.get(delivery.kind)
    return rule(delivery) if rule is not None else None


def _to_header(name, address):
    name = _NOT_IN_HEADER.sub(" ", name).strip()
    if not name.isascii():
        # RFC 2047 words of at most 75 characters, folded between them; formataddr would
        # make one word of any length. Header's default of 76 lets a word reach 77.
        name = Header(name, "utf-8", maxlinelen=75).encode()
    return formataddr((name, address))


def render(delivery):
    """Build the Flask-Mail message of a delivery."""
    if delivery.kind not in CONTEXTS:
        raise Unrenderable(f"unknown mail kind {delivery.kind!r}")
    (name, address), context = CONTEXTS[delivery.kind](delivery)
    # Flask-Mail parses the envelope's address; one it would read differently is refused
    # here rather than sent somewhere else.
    if parseaddr(address) != ("", address):
        raise Unrenderable(f"recipient address {address!r} is not a plain address")
    message = _Message(
        to=_to_header(name, address),
        subject=SUBJECTS[delivery.kind],
        recipients=[address],
        body=render_template(f"mail/{delivery.kind}.txt", **context),
        html=render_template(f"mail/{delivery.kind}.html", **context),
    )
    message.msgId = message_id(delivery.event_id)
    return message


# What the customer who cancelled is told about the provider's mail, in pt-BR.
NOTICES = {
    "failed": (
        "Não foi possível avisar {provider} do cancelamento do seu agendamento de {when}. "
        "Por favor, avise a barbearia."
    ),
    "delivered": (
        "{provider} foi avisado do cancelamento do seu agendamento de {when}. "
        "Não é preciso avisar a barbearia."
    ),
}


def _notice(delivery, wording):
    # Only a cancellation's customer waits on the mail: a reminder that fails tells no
    # one in-app, a reset mail's user asks again.
    if delivery.kind != MailKind.CANCELLATION:
        return None, None
    appointment = db.session.get(Appointment, delivery.appointment_id or 0)
    if appointment is None:
        return None, None
    text = NOTICES[wording].format(
        provider=appointment.provider.name, when=describe_pt_br(appointment.date)
    )
    return appointment.user_id, text


# What the provider is told in-app when their cancellation mail failed, in pt-BR: the
# shop learns of the cancel even when its mailbox refuses mail.
PROVIDER_NOTICE = (
    "{customer} cancelou o agendamento de {when}, e o e-mail avisando disso não pôde ser "
    "entregue. O horário está livre de novo."
)


def provider_notice(delivery):
    """Return (user id, text) of the provider's in-app notice that their cancellation mail
    failed, or (None, None) for another kind of mail."""
    if delivery.kind != MailKind.CANCELLATION:
        return None, None
    appointment = db.session.get(Appointment, delivery.appointment_id or 0)
    if appointment is None:
        return None, None
    text = PROVIDER_NOTICE.format(
        customer=appointment.user.name, when=describe_pt_br(appointment.date)
    )
    return appointment.provider_id, text


def customer_notice(delivery):
    """Return (user id, text) of the customer's notice that the provider could not be told."""
    return _notice(delivery, "failed")


def delivered_notice(delivery):
    """Return (user id, text) of the customer's notice that a mail that had failed went."""
    return _notice(delivery, "delivered")
