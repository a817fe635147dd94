"""Schedule: a provider's appointments on one day (`/schedule` and `/schedules`)."""

from flask import Blueprint
from pydantic import BaseModel, Field

from gobarber.api.contract import current_user, endpoint
from gobarber.api.schemas import ScheduledAppointment
from gobarber.services import appointments
from gobarber.shop_time import from_iso, from_millis

bp = Blueprint("schedule", __name__)


class ScheduleQuery(BaseModel):
    date: str = Field(min_length=1, max_length=64, description="ISO 8601 date or date-time")


def _moment(raw):
    return from_millis(raw) if raw.lstrip("-").isdigit() and len(raw) > 8 else from_iso(raw)


@bp.get("/schedule")
@bp.get("/schedules")
@endpoint(
    query=ScheduleQuery,
    invalid="Invalid date",
    provider_only=True,
    summary="The provider's appointments on the shop-local day of `date`",
    responses={
        200: (list[ScheduledAppointment], "The day's appointments"),
        400: "Invalid date",
        401: "User is not a provider",
    },
)
def day(query):
    rows = appointments.provider_day(provider=current_user(), moment=_moment(query.date))
    return [ScheduledAppointment.of(row) for row in rows]
