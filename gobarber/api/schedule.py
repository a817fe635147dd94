"""Schedule: a provider's appointments on one day (`/schedule` and `/schedules`)."""

from flask import Blueprint
from pydantic import BaseModel

from gobarber.api.contract import current_user, endpoint
from gobarber.api.fields import Moment
from gobarber.api.schemas import ScheduledAppointment
from gobarber.services import appointments

bp = Blueprint("schedule", __name__)


class ScheduleQuery(BaseModel):
    date: Moment


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
    rows = appointments.provider_day(provider=current_user(), moment=query.date)
    return [ScheduledAppointment.of(row) for row in rows]
