"""Render mail events into messages, from the templates in `templates/mail/`."""

from email.utils import parseaddr

from flask import current_app, render_template
from flask_mail import Message
from sqlalchemy.orm import joinedload

from gobarber.extensions import db
from gobarber.models import Appointment
from gobarber.models.mail_delivery import MailKind
from gobarber.shop_time import describe_pt_br

SUBJECTS = {MailKind.CANCELLATION: "Agendamento cancelado"}


class Unrenderable(Exception):
    """The event names something that is gone or unknown; sending it can never work."""


def message_id(event_id):
    """Derive the Message-ID from the event id, so a resent event keeps its identity."""
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "gobarber.local"
    return f"<{event_id}@{domain}>"


def _cancellation_context(delivery):
    # One query for the appointment and both people, none when the session has them.
    appointment = db.session.get(
        Appointment,
        delivery.appointment_id or 0,
        options=[joinedload(Appointment.provider), joinedload(Appointment.user)],
    )
    if appointment is None:
        raise Unrenderable(f"appointment {delivery.appointment_id} not found")
    return {
        "provider": appointment.provider.name,
        "user": appointment.user.name,
        "when": describe_pt_br(appointment.date),
    }


CONTEXTS = {MailKind.CANCELLATION: _cancellation_context}


def render(delivery):
    """Build the Flask-Mail message of a delivery."""
    if delivery.kind not in CONTEXTS:
        raise Unrenderable(f"unknown mail kind {delivery.kind!r}")
    context = CONTEXTS[delivery.kind](delivery)
    message = Message(
        subject=SUBJECTS[delivery.kind],
        recipients=[delivery.recipient],
        body=render_template(f"mail/{delivery.kind}.txt", **context),
        html=render_template(f"mail/{delivery.kind}.html", **context),
    )
    message.msgId = message_id(delivery.event_id)
    return message


def customer_notice(delivery):
    """Return (user id, text) of the customer's notice that the provider could not be told."""
    appointment = db.session.get(Appointment, delivery.appointment_id or 0)
    if appointment is None:
        return None, None
    text = (
        f"Não foi possível avisar {appointment.provider.name} do cancelamento do seu "
        f"agendamento de {describe_pt_br(appointment.date)}. "
        "Por favor, avise a barbearia."
    )
    return appointment.user_id, text
