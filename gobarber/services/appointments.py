"""Booking, listing and cancelling appointments; the provider's day, free slots and the
days and hours still open to booking."""

import calendar
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from gobarber import shop_time
from gobarber.errors import GobarberError, Invalid, NotFound, Unauthorized
from gobarber.extensions import db
from gobarber.mail import outbox
from gobarber.models import Appointment, MailDelivery, User
from gobarber.models.mail_delivery import DeliveryStatus, MailKind
from gobarber.services.notifications import notify
from gobarber.services.users import require_current

log = logging.getLogger(__name__)

PAGE_SIZE = 20
CANCEL_NOTICE = timedelta(hours=2)
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


def _find_provider(provider_id):
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


def _reading():
    """A connection outside any transaction: each read is one statement, with no BEGIN
    and no ROLLBACK around it, and no ORM in between."""
    return db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


_provider = User.__table__.alias("provider")
# The token's user, the provider flag and the day's booked starts in one round trip,
# built once: the availability route is the one the mobile client calls most. No row:
# the token's user is gone; no provider: the provider id names nobody.
_BOOKED_STARTS = (
    select(User.token_version, _provider.c.provider, Appointment.date)
    .select_from(User)
    .outerjoin(_provider, _provider.c.id == bindparam("provider_id"))
    .outerjoin(
        Appointment,
        and_(
            Appointment.provider_id == _provider.c.id,
            Appointment.canceled_at.is_(None),
            Appointment.date >= bindparam("start"),
            Appointment.date < bindparam("end"),
        ),
    )
    .where(User.id == bindparam("user_id"))
)


def _booked_starts(*, signed_in, provider_id, start, end):
    """Return the provider's booked starts in [start, end), once the token of `signed_in`
    is confirmed and the provider found."""
    with _reading() as connection:
        rows = connection.execute(
            _BOOKED_STARTS,
            {"user_id": signed_in.id, "provider_id": provider_id, "start": start, "end": end},
        ).all()
    require_current(signed_in=signed_in, token_version=rows[0].token_version if rows else None)
    if not rows[0].provider:
        raise NotFound("Provider not found")
    return {row.date for row in rows if row.date is not None}


def _is_free(slot, booked, current):
    """Tell whether the slot is still ahead and nobody holds it."""
    return slot > current and slot not in booked


def _too_far_ahead(slot, current):
    """Tell whether the slot lies past the booking horizon (`BOOKING_HORIZON_DAYS`)."""
    return slot - current > timedelta(days=current_app.config["BOOKING_HORIZON_DAYS"])


def availability(*, signed_in, provider_id, moment):
    """Return (slot start in shop time, available) for each slot of the shop-local day,
    once the token of `signed_in` is confirmed."""
    start, end = shop_time.day_bounds(moment)
    booked = _booked_starts(signed_in=signed_in, provider_id=provider_id, start=start, end=end)
    current = shop_time.now()
    return [(slot, _is_free(slot, booked, current)) for slot in shop_time.slots_of_day(moment)]


def _bookable_slots(day, booked, current):
    """Return (slot start in shop time, bookable) for each slot of the shop-local `day`:
    free, and not so far ahead that booking it would be refused."""
    return [
        (slot, _is_free(slot, booked, current) and not _too_far_ahead(slot, current))
        for slot in shop_time.slots_on(day)
    ]


def day_availability(*, signed_in, provider_id, day):
    """Return (slot start in shop time, bookable) for each slot of the shop-local `day`,
    once the token of `signed_in` is confirmed."""
    start, end = shop_time.day_start(day), shop_time.day_start(day + timedelta(days=1))
    booked = _booked_starts(signed_in=signed_in, provider_id=provider_id, start=start, end=end)
    return _bookable_slots(day, booked, shop_time.now())


def month_availability(*, signed_in, provider_id, year, month):
    """Return (day, bookable) for each shop-local day of the month, a day being bookable
    while one of its slots is, once the token of `signed_in` is confirmed."""
    first = date(year, month, 1)
    days = [first + timedelta(days=n) for n in range(calendar.monthrange(year, month)[1])]
    start, end = shop_time.day_start(first), shop_time.day_start(days[-1] + timedelta(days=1))
    # The whole month in one statement; each day is then sorted out here.
    booked = _booked_starts(signed_in=signed_in, provider_id=provider_id, start=start, end=end)
    current = shop_time.now()
    return [
        (day, any(bookable for _, bookable in _bookable_slots(day, booked, current)))
        for day in days
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
    provider = _find_provider(provider_id)
    if provider is None:
        raise Unauthorized("You can only create appointments with providers")
    if provider.id == customer.id:
        raise Invalid("You can not create appointments with yourself")
    slot = shop_time.hour_start(start)
    current = shop_time.now()
    if slot < current:
        raise Invalid("Past dates are not permitted")
    if _too_far_ahead(slot, current):
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


@dataclass(frozen=True)
class Person:
    """Someone as a canceled appointment shows them."""

    name: str
    email: str | None = None


@dataclass(frozen=True)
class Canceled:
    """An appointment as its cancel left it, read without the ORM."""

    id: int
    date: datetime
    canceled_at: datetime
    user_id: int
    provider_id: int
    created_at: datetime
    updated_at: datetime
    provider: Person
    user: Person


# Everything a cancel reads, in one statement: the token's user (its version checks the
# token, its name is in the answer) with its row locked, which serialises the customer's
# bookings and cancels (see _lock_customer); the appointment, its provider and its
# reminder. No appointment: its columns are NULL.
_CANCELING = (
    select(
        User.token_version,
        User.name,
        Appointment.user_id,
        Appointment.provider_id,
        Appointment.date,
        Appointment.canceled_at,
        Appointment.created_at,
        _provider.c.name.label("provider_name"),
        _provider.c.email.label("provider_email"),
        select(func.max(MailDelivery.id))
        .where(
            MailDelivery.appointment_id == Appointment.id,
            MailDelivery.kind == MailKind.REMINDER,
        )
        .scalar_subquery()
        .label("reminder_id"),
    )
    .select_from(User)
    .outerjoin(Appointment, Appointment.id == bindparam("appointment_id"))
    .outerjoin(_provider, _provider.c.id == Appointment.provider_id)
    .where(User.id == bindparam("customer_id"))
    .with_for_update(key_share=True, of=User)
)
# Conditional: of two concurrent cancels, only one changes the row and mails.
_CANCEL = (
    update(Appointment)
    .where(Appointment.id == bindparam("appointment_id"), Appointment.canceled_at.is_(None))
    .values(canceled_at=bindparam("now"), updated_at=bindparam("now"))
)


def _refuse_unless_cancelable(seen, customer_id):
    """Raise the contract's refusal, in its order, unless the customer may cancel."""
    if seen.user_id is None:
        raise NotFound("Appointment not found")
    if seen.user_id != customer_id:
        raise Unauthorized("You don't have permission to cancel this appointment.")
    if seen.canceled_at is not None:
        raise GobarberError("Appointment already canceled")
    if not is_cancelable(seen):
        raise Unauthorized("You can only cancel appointments 2 hours in advance.")


def cancel(*, signed_in, appointment_id):
    """Cancel the signed-in user's appointment, queue the provider's mail and cancel the
    customer's reminder, in one transaction; then publish the mail.

    Past the customer's `CANCELLATION_MAILS_PER_DAY` the mail is held for an operator
    instead of queued. Returns the appointment, the mail's delivery row and the
    reminder's (or None).
    """
    with db.engine.connect() as connection:
        with connection.begin():  # the one durable commit
            seen = connection.execute(
                _CANCELING, {"customer_id": signed_in.id, "appointment_id": appointment_id}
            ).first()
            require_current(signed_in=signed_in, token_version=seen and seen.token_version)
            _refuse_unless_cancelable(seen, signed_in.id)
            canceled_at = shop_time.now()
            canceled = connection.execute(
                _CANCEL, {"appointment_id": appointment_id, "now": canceled_at}
            )
            if canceled.rowcount != 1:
                raise GobarberError("Appointment already canceled")
            reminder = None
            if seen.reminder_id is not None:
                # Only the row: should the event still reach a worker, it finds it canceled.
                reminder = outbox.cancel_reminder(
                    connection, appointment_id=appointment_id, reminder_id=seen.reminder_id
                )
            delivery = outbox.add_cancellation_mail(
                connection,
                appointment_id=appointment_id,
                customer_id=signed_in.id,
                recipient=seen.provider_email,
                daily_cap=current_app.config["CANCELLATION_MAILS_PER_DAY"],
            )
        if delivery.status == DeliveryStatus.HELD:
            log.warning(
                "mail event %s held: user %s is over %s cancellation mails a day",
                delivery.event_id,
                signed_in.id,
                current_app.config["CANCELLATION_MAILS_PER_DAY"],
            )
        else:
            outbox.publish_committed(delivery, connection)
    appointment = Canceled(
        id=appointment_id,
        date=seen.date,
        canceled_at=canceled_at,
        user_id=signed_in.id,
        provider_id=seen.provider_id,
        created_at=seen.created_at,
        updated_at=canceled_at,
        provider=Person(seen.provider_name, seen.provider_email),
        user=Person(seen.name),
    )
    return appointment, delivery, reminder


# ---- the customer's pages


def bookable_provider(*, provider_id):
    """Return the provider of `provider_id`, or raise `Provider not found`."""
    provider = _find_provider(provider_id)
    if provider is None:
        raise NotFound("Provider not found")
    return provider


@dataclass(frozen=True)
class CustomerAppointments:
    """A customer's appointments as their page lists them, at most a page of each kind."""

    upcoming: list  # soonest first
    past: list  # latest first
    canceled: list  # (appointment, its cancellation mail's delivery row or None), latest first


def customer_overview(*, user, limit=PAGE_SIZE):
    """Return the user's upcoming, past and canceled appointments, at most `limit` of each,
    the canceled ones with the delivery rows of their cancellation mails."""
    current = shop_time.now()
    mine = (
        select(Appointment)
        .where(Appointment.user_id == user.id)
        .options(joinedload(Appointment.provider).joinedload(User.avatar))
    )
    standing = mine.where(Appointment.canceled_at.is_(None))
    upcoming = standing.where(Appointment.date >= current).order_by(
        Appointment.date, Appointment.id
    )
    past = standing.where(Appointment.date < current).order_by(
        Appointment.date.desc(), Appointment.id.desc()
    )
    canceled = mine.where(Appointment.canceled_at.is_not(None)).order_by(
        Appointment.canceled_at.desc(), Appointment.id.desc()
    )
    canceled_rows = db.session.scalars(canceled.limit(limit)).all()
    mails = {}
    if canceled_rows:
        # Ascending ids: should an appointment have two, the latest is kept, as
        # `cancellation_mail` reads it.
        query = (
            select(MailDelivery)
            .where(
                MailDelivery.appointment_id.in_([row.id for row in canceled_rows]),
                MailDelivery.kind == MailKind.CANCELLATION,
            )
            .order_by(MailDelivery.id)
        )
        mails = {row.appointment_id: row for row in db.session.scalars(query)}
    return CustomerAppointments(
        upcoming=db.session.scalars(upcoming.limit(limit)).all(),
        past=db.session.scalars(past.limit(limit)).all(),
        canceled=[(row, mails.get(row.id)) for row in canceled_rows],
    )
