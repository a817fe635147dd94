"""The customer's pages: choose a barber, a day and a free hour, and book it; see one's
appointments, cancel one, and follow the mail that tells the barber.

The same services as `GET /providers`, `GET /providers/:id/month-availability` and
`/day-availability`, `POST /appointments`, `GET /appointments` and
`DELETE /appointments/:id`. A canceled appointment's mail is shown as its delivery row
stands; while it is queued, `static/pages/customer.js` polls the small JSON route below
and updates the page without a reload. Without JavaScript the pages work as they are,
only not live.
"""

import calendar
import re
from datetime import date, timedelta

from babel.dates import format_skeleton
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import format_date, format_time, get_locale, pgettext
from flask_babel import gettext as _
from markupsafe import Markup
from pydantic import ValidationError

from gobarber import shop_time
from gobarber.api.contract import HTML_PAGE, json_content
from gobarber.api.providers import CalendarDayQuery, MonthQuery
from gobarber.errors import GobarberError
from gobarber.services import appointments
from gobarber.services.users import SignedIn
from gobarber.web.pages import PAGE, bp, error_page, page, person_required
from gobarber.web.pages.customer_forms import BookingForm

NO_PROVIDER = ("No such provider: a page saying so", HTML_PAGE)
MAIL_STATUS = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["queued", "sent", "failed", "held"]},
        "label": {"type": "string", "description": "The status in the page's language"},
        "attempts": {"type": "integer", "minimum": 0},
    },
    "required": ["status", "label", "attempts"],
    "additionalProperties": False,
}
# Where customer.js writes the provider's name in a notice it shows.
PROVIDER_SLOT = Markup("<span data-provider></span>")
_DAY_IN_PATH = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
# The service's refusal, said beside an appointment too close to cancel (the same text,
# so the same translation; tests/web/test_customer_routes.py holds them equal).
TOO_LATE_TO_CANCEL = "You can only cancel appointments 2 hours in advance."


def _form(*fields):
    """The JSON schema of a form of text `fields`, with its CSRF token."""
    properties = {name: {"type": "string"} for name in ("csrf_token", *fields)}
    return {"type": "object", "properties": properties, "required": ["csrf_token", *fields]}


# ---- what the pages show --------------------------------------------------------------


def _signed_in(user):
    """Whom the session signed in, as the services confirm a token's user."""
    return SignedIn(user.id, user.token_version)


def _when(moment):
    """Word a moment for people: its shop-local day and hour, in the page's language."""
    local = shop_time.local(moment)
    return _(
        "%(day)s at %(time)s",
        day=format_date(local, "full", rebase=False),
        time=format_time(local, "short", rebase=False),
    )


def _mail_label(status):
    """A cancellation mail's status in the page's language."""
    labels = {
        "queued": pgettext("mail status", "queued"),
        "sent": pgettext("mail status", "sent"),
        "failed": pgettext("mail status", "failed"),
        "held": pgettext("mail status", "held"),
    }
    return labels.get(status, status)


def _month_caption(first):
    caption = format_skeleton("yMMMM", first, locale=get_locale())
    return caption[:1].upper() + caption[1:]


def _weekdays():
    """(abbreviated, full) weekday names, in the order the page's locale starts a week."""
    locale = get_locale()
    names = locale.days["stand-alone"]
    order = [(locale.first_week_day + n) % 7 for n in range(7)]
    return [(names["abbreviated"][n], names["wide"][n]) for n in order]


def _weeks(year, month, bookable):
    """The month's weeks, each seven (day, bookable) cells; None outside the month."""
    weeks = calendar.Calendar(get_locale().first_week_day).monthdatescalendar(year, month)
    return [[(day, bookable[day]) if day.month == month else None for day in w] for w in weeks]


def _month_beside(year, month, by):
    shifted_year, index = divmod(year * 12 + month - 1 + by, 12)
    return {"year": shifted_year, "month": index + 1}


def _day_in_path(text):
    """The day a path names as YYYY-MM-DD (`day-availability`'s rules), or None."""
    match = _DAY_IN_PATH.fullmatch(text)
    if match is None:
        return None
    year, month, day = map(int, match.groups())
    try:
        CalendarDayQuery(year=year, month=month, day=day)
    except ValidationError:
        return None
    return date(year, month, day)


def _day_page(user, provider_id, day, *, refusal=None, status=200):
    slots = appointments.day_availability(
        signed_in=_signed_in(user), provider_id=provider_id, day=day
    )
    today = shop_time.today()
    return render_template(
        "pages/customer/day.html",
        provider=appointments.bookable_provider(provider_id=provider_id),
        day=day,
        day_label=format_date(day, "full"),
        hours=[
            {
                "value": slot.isoformat(),
                "time": format_time(slot, "short", rebase=False),
                "free": free,
            }
            for slot, free in slots
        ],
        previous=day - timedelta(days=1) if day > today else None,
        following=day + timedelta(days=1),
        refusal=refusal,
    ), status


# ---- choosing and booking -------------------------------------------------------------


@bp.get("/book")
@page(
    summary="The providers to book with (GET /providers's), each linking to its month",
    responses={200: PAGE},
)
@person_required("customer")
def providers(user):
    return render_template("pages/customer/providers.html", providers=appointments.providers())


@bp.get("/book/<id:provider_id>")
@page(
    summary="A provider's month (?year=&month=, this month by default; "
    "GET /providers/:id/month-availability's): a calendar whose days with a free hour "
    "link to them",
    responses={
        200: PAGE,
        400: ("The year or the month is not one: a page saying so", HTML_PAGE),
        404: NO_PROVIDER,
    },
)
@person_required("customer")
def month(user, provider_id):
    today = shop_time.today()
    try:
        shown = MonthQuery.model_validate(
            {
                "year": request.args.get("year", today.year),
                "month": request.args.get("month", today.month),
            }
        )
    except ValidationError:
        return error_page(400, _("There is no such month."))
    days = appointments.month_availability(
        signed_in=_signed_in(user), provider_id=provider_id, year=shown.year, month=shown.month
    )
    first = date(shown.year, shown.month, 1)
    return render_template(
        "pages/customer/month.html",
        provider=appointments.bookable_provider(provider_id=provider_id),
        caption=_month_caption(first),
        weekdays=_weekdays(),
        weeks=_weeks(shown.year, shown.month, dict(days)),
        any_free=any(bookable for _day, bookable in days),
        today=today,
        previous=_month_beside(shown.year, shown.month, -1) if first > today else None,
        following=_month_beside(shown.year, shown.month, 1),
    )


@bp.get("/book/<id:provider_id>/<day>")
@page(
    summary="A provider's hours on a shop-local day (YYYY-MM-DD; "
    "GET /providers/:id/day-availability's): each free hour a button that books it",
    responses={200: PAGE, 404: ("No such provider or day: a page saying so", HTML_PAGE)},
)
@person_required("customer")
def book_day(user, provider_id, day):
    chosen = _day_in_path(day)
    if chosen is None:
        abort(404)
    return _day_page(user, provider_id, chosen)


@bp.post("/book/<id:provider_id>")
@page(
    method="POST",
    summary="Book the hour that holds `date` (POST /appointments's)",
    form=_form("date"),
    responses={
        302: "Booked: to the customer's appointments",
        400: (
            "Refused (the hour was just taken, or too far ahead, ...): the day page again, "
            "with the reason; or `date` is not a date: a page saying so",
            HTML_PAGE,
        ),
        404: NO_PROVIDER,
    },
)
@person_required("customer")
def book(user, provider_id):
    form = BookingForm()
    if not form.validate_on_submit():
        problem = form.date.errors[0] if form.date.errors else _("Validation fails")
        return error_page(400, _("The hour could not be read: %(problem)s.", problem=problem))
    try:
        booked = appointments.book(customer=user, provider_id=provider_id, start=form.date.data)
    except GobarberError as error:
        day = shop_time.local(form.date.data).date()
        return _day_page(user, provider_id, day, refusal=_(error.message), status=error.status)
    flash(
        _("Booked: %(provider)s, %(when)s.", provider=booked.provider.name, when=_when(booked.date))
    )
    return redirect(url_for("pages.appointments", _anchor=f"appointment-{booked.id}"))


# ---- the customer's appointments ------------------------------------------------------


@bp.get("/appointments", endpoint="appointments")
@page(
    summary="The customer's upcoming appointments (each with a cancel button while the "
    "2-hour rule allows), the past ones, and the canceled ones with their mail's status",
    responses={200: PAGE},
)
@person_required("customer")
def my_appointments(user):
    mine = appointments.customer_overview(user=user)
    return render_template(
        "pages/customer/appointments.html",
        upcoming=[(row, appointments.is_cancelable(row)) for row in mine.upcoming],
        past=mine.past,
        canceled=mine.canceled,
        following_mail=any(
            mail is not None and mail.shown_status == "queued" for _row, mail in mine.canceled
        ),
        when=_when,
        mail_label=_mail_label,
        provider_slot=PROVIDER_SLOT,
        too_late=_(TOO_LATE_TO_CANCEL),
    )


@bp.post("/appointments/<id:appointment_id>/cancel")
@page(
    method="POST",
    summary="Cancel one of the customer's appointments (DELETE /appointments/:id's): the "
    "provider is mailed",
    form=_form(),
    responses={
        302: "Canceled: to the customer's appointments, where the mail's status shows",
        400: ("Already canceled: a page saying so", HTML_PAGE),
        401: ("Not the customer's, or less than 2 hours ahead: a page saying so", HTML_PAGE),
        404: ("No such appointment: a page saying so", HTML_PAGE),
    },
)
@person_required("customer")
def cancel(user, appointment_id):
    try:
        canceled = appointments.cancel(signed_in=_signed_in(user), appointment_id=appointment_id)[0]
    except GobarberError as error:
        return error_page(error.status, _(error.message))
    flash(
        _(
            "Canceled: %(provider)s, %(when)s.",
            provider=canceled.provider.name,
            when=_when(canceled.date),
        )
    )
    return redirect(url_for("pages.appointments", _anchor=f"appointment-{appointment_id}"))


@bp.get("/appointments/<id:appointment_id>/mail")
@page(
    summary="Where a canceled appointment's mail to the provider stands, for the "
    "appointments page to follow while it is queued",
    responses={
        200: ("The mail's status", json_content(MAIL_STATUS)),
        404: ("No such appointment of the customer's, or no mail: a page saying so", HTML_PAGE),
    },
)
@person_required("customer")
def mail_status(user, appointment_id):
    appointment = appointments.find_for(user=user, appointment_id=appointment_id)
    delivery = appointments.cancellation_mail(appointment=appointment)
    if delivery is None:
        abort(404)
    status = str(delivery.shown_status)
    return {"status": status, "label": _mail_label(status), "attempts": delivery.attempts}
