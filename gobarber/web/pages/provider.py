"""The provider's pages: the day's appointments and the notifications, both live.

The same services as `GET /schedule` and `GET`/`PUT /notifications`. Each list is
rendered whole by the server; `static/pages/provider.js` then polls the small JSON
routes below (the list's and the unread count's) and updates the page without a
reload. Without JavaScript the pages work as they are, only not live.
"""

from datetime import timedelta

from flask import flash, g, has_request_context, redirect, render_template, request, url_for
from flask_babel import format_date, format_datetime, format_time
from flask_babel import gettext as _

from gobarber import shop_time
from gobarber.api.contract import HTML_PAGE, json_content
from gobarber.services import appointments, notifications
from gobarber.web.pages import PAGE, bp, error_page, page, person_required, signed_in_user
from gobarber.web.pages.provider_forms import DayForm

_TEXT = {"type": "string"}
_ID = {"type": "integer", "minimum": 1}


def _object(**properties):
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_APPOINTMENT = _object(
    key=_TEXT,
    id=_ID,
    time={**_TEXT, "description": "The hour, in shop time, as the page's language says it"},
    start={"type": "string", "format": "date-time"},
    customer=_TEXT,
)
_NOTIFICATION = _object(
    key=_TEXT,
    id=_ID,
    content=_TEXT,
    time={**_TEXT, "description": "When, in shop time, as the page's language says it"},
    created_at={"type": "string", "format": "date-time"},
    read={"type": "boolean"},
    mark_url={**_TEXT, "description": "Where the form that marks it read posts"},
)
DAY_FEED = _object(
    date={"type": "string", "format": "date"},
    appointments={"type": "array", "items": _APPOINTMENT},
)
NOTIFICATIONS_FEED = _object(notifications={"type": "array", "items": _NOTIFICATION})
UNREAD = _object(count={"type": "integer", "minimum": 0})
BAD_DAY = ("The date is not one: a page saying so", HTML_PAGE)


def _takes_a_day(view):
    """Declare the `date` query parameter of a day's route (`page` declares none)."""
    parameter = {
        "name": "date",
        "in": "query",
        "required": False,
        "description": "The shop-local day, YYYY-MM-DD (GET /schedule's `date`); today if absent",
        "schema": {"type": "string", "format": "date"},
    }
    for record in view.openapi_documented.values():
        record["operation"]["parameters"] = [parameter]
    return view


# ---- what the pages show --------------------------------------------------------------


def _shown_appointment(row):
    start = shop_time.local(row.date)
    return {
        "key": str(row.id),
        "id": row.id,
        "time": format_time(start, "short", rebase=False),
        "start": start.isoformat(),
        "customer": row.user.name,
    }


def _shown_notification(row):
    return {
        "key": f"{row.id}:{'read' if row.read else 'unread'}",
        "id": row.id,
        "content": row.content,
        "time": format_datetime(shop_time.local(row.created_at), "short", rebase=False),
        "created_at": shop_time.iso_utc(row.created_at),
        "read": row.read,
        "mark_url": url_for("pages.mark_read", notification_id=row.id),
    }


def _unread(user):
    """The unread among the notifications the list shows (`GET /notifications`'s)."""
    return sum(not row.read for row in notifications.latest(user=user))


def _chosen_day():
    """The day form of this request's query (today without a date), and the shop-local
    day it names, or None when it names none."""
    form = DayForm(request.args or None, date=shop_time.today().isoformat())
    if not form.validate():
        return form, None
    day = shop_time.local(form.date.data).date()
    form.date.data = day.isoformat()  # the field shows the day, not the moment it read
    return form, day


def _beside(day, days):
    # The calendar ends somewhere: there is no day after 31 December 9999.
    try:
        return (day + timedelta(days=days)).isoformat()
    except OverflowError:
        return None


def _day_appointments(user, day):
    rows = appointments.provider_day(provider=user, moment=shop_time.day_start(day))
    return [_shown_appointment(row) for row in rows]


@bp.app_context_processor
def _unread_badge():
    # The header's count on a signed-in provider's pages. Mails render templates with
    # no request; an error page asks the database nothing.
    if not has_request_context() or request.blueprint != bp.name or g.get("error_page"):
        return {}
    user = signed_in_user()
    if user is None or not user.provider:
        return {}
    return {"unread_count": _unread(user)}


# ---- the day ----------------------------------------------------------------------------


@bp.get("/day")
@_takes_a_day
@page(
    summary="The provider's appointments on a shop-local day (?date=YYYY-MM-DD, today by "
    "default; GET /schedule's), with the days before and after; new ones appear live",
    responses={200: PAGE, 400: ("The page, with the date's message", HTML_PAGE)},
)
@person_required("provider")
def day(user):
    form, shown = _chosen_day()
    if shown is None:
        return render_template("pages/provider/day.html", form=form, day=None), 400
    return render_template(
        "pages/provider/day.html",
        form=form,
        day=shown,
        day_label=format_date(shown, "full"),
        today=shop_time.today(),
        previous=_beside(shown, -1),
        following=_beside(shown, 1),
        appointments=_day_appointments(user, shown),
    )


@bp.get("/day/appointments")
@_takes_a_day
@page(
    summary="The day page's list, as JSON, for the page to follow (?date=YYYY-MM-DD)",
    responses={200: ("The day's appointments", json_content(DAY_FEED)), 400: BAD_DAY},
)
@person_required("provider")
def day_feed(user):
    form, shown = _chosen_day()
    if shown is None:
        return error_page(400, form.date.errors[0])
    return {"date": shown.isoformat(), "appointments": _day_appointments(user, shown)}


# ---- notifications -----------------------------------------------------------------------


@bp.get("/notifications", endpoint="notifications")
@page(
    summary="The provider's 20 newest notifications (GET /notifications's), the unread "
    "marked, each with a button to mark it read; new ones appear live",
    responses={200: PAGE},
)
@person_required("provider")
def notification_list(user):
    shown = [_shown_notification(row) for row in notifications.latest(user=user)]
    return render_template("pages/provider/notifications.html", notifications=shown)


@bp.get("/notifications/feed")
@page(
    summary="The notifications page's list, as JSON, for the page to follow",
    responses={200: ("The 20 newest notifications", json_content(NOTIFICATIONS_FEED))},
)
@person_required("provider")
def notifications_feed(user):
    shown = [_shown_notification(row) for row in notifications.latest(user=user)]
    return {"notifications": shown}


@bp.get("/notifications/unread")
@page(
    summary="How many of the notifications the list shows are unread: the header's count",
    responses={200: ("The unread count", json_content(UNREAD))},
)
@person_required("provider")
def unread_count(user):
    return {"count": _unread(user)}


@bp.post("/notifications/<id:notification_id>/read", endpoint="mark_read")
@page(
    method="POST",
    summary="Mark one of the provider's notifications read (PUT /notifications/:id's)",
    form={
        "type": "object",
        "properties": {"csrf_token": _TEXT},
        "required": ["csrf_token"],
    },
    responses={
        302: "Marked: to the notifications",
        404: ("No such notification of this provider: a page saying so", HTML_PAGE),
    },
)
@person_required("provider")
def mark_notification_read(user, notification_id):
    notifications.mark_read(user=user, notification_id=notification_id)
    flash(_("Marked as read."))
    return redirect(url_for("pages.notifications"))
