"""Providers: the list of barbers and a barber's free slots on a day."""

from flask import Blueprint
from pydantic import BaseModel

from gobarber.api.contract import endpoint, signed_in
from gobarber.api.fields import Moment
from gobarber.api.schemas import ProviderOut, Slot
from gobarber.services import appointments

bp = Blueprint("providers", __name__)


class DayQuery(BaseModel):
    date: Moment


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
