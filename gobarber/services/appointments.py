"""Booking, listing and cancelling appointments; the provider's day and free slots."""

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from gobarber import shop_time
from gobarber.errors import GobarberError, Invalid, NotFound, Unauthorized
from gobarber.extensions import db
from gobarber.mail import outbox
from gobarber.models import Appointment, User
from gobarber.services.notifications import notify

log = logging.getLogger(__name__)

PAGE_SIZE = 20
CANCEL_NOTICE = timedelta(hours=2)
MAIL_CAP_WINDOW = timedelta(hours=24)
SLOT_TAKEN = "Appointment date is not available"
TOO_FAR_AHEAD = "Appointment date is too far ahead"
TOO_MANY_ACTIVE = "Too many active appointments"


def is_past(appointment):
    """Tell whether the appointment's start has passed."""
    return appointment.date < shop_time.now()


def is_cancelable(appointment):
    """Tell whether the appointment still stands more than two hours before its start."""
    return appointment.canceled_at is None and shop_time.now() < appointment.date - CANCEL_NOTICE


def providers():
    """Return every provider, with their avatar loaded."""
    query = select(User).where(User.provider.is_(True)).options(joinedload(User.avatar))
    return db.session.scalars(query.order_by(User.name, User.id)).all()


def _provider(provider_id):
    provider = db.session.get(User, provider_id)
    return provider if provider is not None and provider.provider else None


def _active_between(provider_id, start, end):
    return (
        select(Appointment)
        .where(
            Appointment.provider_id == provider_id,
            Appointment.canceled_at.is_(None),
            Appointment.date >= start,
            Appointment.date < end,
        )
        .order_by(Appointment.date)
    )


# The provider flag and the day's booked starts in one round trip, built once: the
# availability route is the one the mobile client calls most.
_BOOKED_STARTS = (
    select(User.provider, Appointment.date)
    .outerjoin(
        Appointment,
        and_(
            Appointment.provider_id == User.id,
            Appointment.canceled_at.is_(None),
            Appointment.date >= bindparam("start"),
            Appointment.date < bindparam("end"),
        ),
    )
    .where(User.id == bindparam("provider_id"))
)


def availability(*, provider_id, moment):
    """Return (slot start in shop time, available) for each slot of the shop-local day."""
    start, end = shop_time.day_bounds(moment)
    rows = db.session.execute(
        _BOOKED_STARTS, {"provider_id": provider_id, "start": start, "end": end}
    ).all()
    if not rows or not rows[0].provider:
        raise NotFound("Provider not found")
    booked = {row.date for row in rows if row.date is not None}
    current = shop_time.now()
    return [
        (slot, slot > current and slot not in booked) for slot in shop_time.slots_of_day(moment)
    ]


def customer_appointments(*, user, page):
    """Return one page of the user's upcoming and past non-canceled appointments."""
    query = (
        select(Appointment)
        .where(Appointment.user_id == user.id, Appointment.canceled_at.is_(None))
        .options(joinedload(Appointment.provider).joinedload(User.avatar))
        .order_by(Appointment.date, Appointment.id)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    return db.session.scalars(query).all()


def provider_day(*, provider, moment):
    """Return the provider's non-canceled appointments in the shop-local day of `moment`."""
    if not provider.provider:
        raise Unauthorized("User is not a provider")
    start, end = shop_time.day_bounds(moment)
    query = _active_between(provider.id, start, end).options(joinedload(Appointment.user))
    return db.session.scalars(query).all()


def _lock_customer(customer):
    # Serialises one customer's bookings and cancels on PostgreSQL, so a count taken
    # after the lock sees every earlier commit. NO KEY UPDATE leaves the KEY SHARE that
    # other people's appointments take on this row (as provider) free: no deadlock when
    # two providers book each other. SQLite serialises writers anyway and ignores it.
    lock = select(User.id).where(User.id == customer.id).with_for_update(key_share=True)
    db.session.execute(lock)


def _active_count(customer):
    query = select(func.count()).where(
        Appointment.user_id == customer.id,
        Appointment.canceled_at.is_(None),
        Appointment.date >= shop_time.now(),
    )
    return db.session.scalar(query)


def book(*, customer, provider_id, start):
    """Book the hour that holds `start` with a provider, notify the provider and schedule
    the customer's reminder."""
    provider = _provider(provider_id)
    if provider is None:
        raise Unauthorized("You can only create appointments with providers")
    if provider.id == customer.id:
        raise Invalid("You can not create appointments with yourself")
    slot = shop_time.hour_start(start)
    current = shop_time.now()
    if slot < current:
        raise Invalid("Past dates are not permitted")
    if slot - current > timedelta(days=current_app.config["BOOKING_HORIZON_DAYS"]):
        raise Invalid(TOO_FAR_AHEAD)
    if not shop_time.is_slot(slot):
        raise Invalid(SLOT_TAKEN)
    taken = _active_between(provider.id, slot, slot + timedelta(seconds=1))
    if db.session.scalar(taken) is not None:
        raise Invalid(SLOT_TAKEN)
    _lock_customer(customer)
    if _active_count(customer) >= current_app.config["MAX_ACTIVE_BOOKINGS"]:
        db.session.rollback()
        raise Invalid(TOO_MANY_ACTIVE)
    appointment = Appointment(user_id=customer.id, provider_id=provider.id, date=slot)
    db.session.add(appointment)
    notify(
        user_id=provider.id,
        content=f"Novo agendamento de {customer.name} para {shop_time.describe_pt_br(slot)}",
    )
    try:
        db.session.flush()  # the appointment's id, for its reminder
        reminder = outbox.queue_reminder(appointment=appointment)
        db.session.commit()
    except IntegrityError:
        # A concurrent booking won the slot; the unique index refused this one.
        db.session.rollback()
        raise Invalid(SLOT_TAKEN) from None
    if reminder is not None:
        outbox.publish_quietly(reminder)
    return appointment


def _load(appointment_id):
    query = (
        select(Appointment)
        .where(Appointment.id == appointment_id)
        .options(joinedload(Appointment.provider), joinedload(Appointment.user))
    )
    return db.session.scalar(query)


def find_for(*, user, appointment_id):
    """Return one appointment the user takes part in, as customer or provider."""
    appointment = _load(appointment_id)
    if appointment is None or user.id not in (appointment.user_id, appointment.provider_id):
        raise NotFound("Appointment not found")
    return appointment


def cancellation_mail(*, appointment):
    """Return the delivery row of the appointment's cancellation mail, if it has one."""
    return outbox.cancellation_delivery(appointment_id=appointment.id)


def reminder_mail(*, appointment):
    """Return the delivery row of the appointment's reminder, if it has one."""
    return outbox.reminder_delivery(appointment_id=appointment.id)


def _over_mail_cap(customer):
    sent = outbox.cancellation_mails_of(
        customer_id=customer.id, since=shop_time.now() - MAIL_CAP_WINDOW
    )
    return sent >= current_app.config["CANCELLATION_MAILS_PER_DAY"]


def cancel(*, user, appointment_id):
    """Cancel the user's appointment, queue the provider's mail and cancel the customer's
    reminder, in one transaction.

    Past the customer's `CANCELLATION_MAILS_PER_DAY` the mail is held for an operator
    instead of queued. Returns the appointment and the mail's delivery row.
    """
    appointment = _load(appointment_id)
    if appointment is None:
        raise NotFound("Appointment not found")
    if appointment.user_id != user.id:
        raise Unauthorized("You don't have permission to cancel this appointment.")
    if appointment.canceled_at is not None:
        raise GobarberError("Appointment already canceled")
    if not is_cancelable(appointment):
        raise Unauthorized("You can only cancel appointments 2 hours in advance.")
    # Locked first, so that concurrent cancels count each other's mails against the cap.
    _lock_customer(user)
    # Conditional update: of two concurrent cancels, only one changes the row and mails.
    canceled_at = shop_time.now()
    canceled = db.session.execute(
        update(Appointment)
        .where(Appointment.id == appointment.id, Appointment.canceled_at.is_(None))
        .values(canceled_at=canceled_at, updated_at=canceled_at)
        .execution_options(synchronize_session=False)
    )
    if canceled.rowcount != 1:
        db.session.rollback()
        raise GobarberError("Appointment already canceled")
    # Only the row: should the event still reach a worker, it finds the row canceled.
    outbox.cancel_reminder(appointment_id=appointment.id)
    held = _over_mail_cap(user)
    delivery = outbox.queue_cancellation_mail(appointment=appointment, held=held)
    db.session.commit()
    for key in ("canceled_at", "updated_at"):  # what the UPDATE wrote, without a reload
        set_committed_value(appointment, key, canceled_at)
    if held:
        log.warning(
            "mail event %s held: user %s is over %s cancellation mails a day",
            delivery.event_id,
            user.id,
            current_app.config["CANCELLATION_MAILS_PER_DAY"],
        )
    else:
        outbox.publish_quietly(delivery)
    return appointment, delivery
