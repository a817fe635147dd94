"""Providers: the list of barbers, a barber's free slots on a day, and the days of a month
and hours of a day still open to booking."""

import calendar
from datetime import MAXYEAR, MINYEAR, date
from typing import Annotated

from flask import Blueprint
from pydantic import BaseModel, Field, model_validator

from gobarber.api.contract import endpoint, signed_in
from gobarber.api.fields import FieldProblem, Moment
from gobarber.api.schemas import DayAvailability, HourAvailability, ProviderOut, Slot
from gobarber.services import appointments

bp = Blueprint("providers", __name__)

# A month's bounds in UTC lie up to a day either side of its shop-local days: neither the
# calendar's first year nor its last, so that every bound is a datetime.
Year = Annotated[int, Field(ge=MINYEAR + 1, le=MAXYEAR - 1)]
Month = Annotated[int, Field(ge=1, le=12)]
DayOfMonth = Annotated[int, Field(ge=1, le=31)]


class DayQuery(BaseModel):
    date: Moment


class MonthQuery(BaseModel):
    year: Year
    month: Month


class CalendarDayQuery(MonthQuery):
    day: DayOfMonth

    @model_validator(mode="after")
    def _a_day_of_that_month(self):
        if self.day > calendar.monthrange(self.year, self.month)[1]:
            raise FieldProblem("not a day of that month", field="day")
        return self


@bp.get("/providers")
@endpoint(summary="List the providers", responses={200: (list[ProviderOut], "The providers")})
def index():
    return [ProviderOut.of(provider) for provider in appointments.providers()]


@bp.get("/providers/<id:provider_id>/available")
@endpoint(
    query=DayQuery,
    invalid="Invalid date",
    summary="The provider's slots on the shop-local day of `date`",
    responses={
        200: (list[Slot], "One entry per slot"),
        400: "Invalid date",
        404: "Provider not found",
    },
    confirms_token=True,
)
def available(provider_id, query):
    slots = appointments.availability(
        signed_in=signed_in(), provider_id=provider_id, moment=query.date
    )
    return [Slot.of(start, free) for start, free in slots]


@bp.get("/providers/<id:provider_id>/month-availability")
@endpoint(
    query=MonthQuery,
    summary="The provider's shop-local days of a month, each available while one of its "
    "hours is free, still ahead and within the booking horizon",
    responses={
        200: (list[DayAvailability], "One entry per day of the month"),
        400: "Validation fails",
        404: "Provider not found",
    },
    confirms_token=True,
)
def month_availability(provider_id, query):
    days = appointments.month_availability(
        signed_in=signed_in(), provider_id=provider_id, year=query.year, month=query.month
    )
    return [DayAvailability.of(day, bookable) for day, bookable in days]


@bp.get("/providers/<id:provider_id>/day-availability")
@endpoint(
    query=CalendarDayQuery,
    summary="The provider's slots on a shop-local day, by hour, each available while it is "
    "free, still ahead and within the booking horizon",
    responses={
        200: (list[HourAvailability], "One entry per slot of the shop's day"),
        400: "Validation fails",
        404: "Provider not found",
    },
    confirms_token=True,
)
def day_availability(provider_id, query):
    slots = appointments.day_availability(
        signed_in=signed_in(),
        provider_id=provider_id,
        day=date(query.year, query.month, query.day),
    )
    return [HourAvailability.of(start, bookable) for start, bookable in slots]
