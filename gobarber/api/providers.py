"""Providers: the list of barbers and a barber's free slots on a day."""

from flask import Blueprint
from pydantic import BaseModel, Field

from gobarber.api import shapes
from gobarber.api.contract import endpoint
from gobarber.services import appointments
from gobarber.shop_time import from_millis

bp = Blueprint("providers", __name__)


class DayQuery(BaseModel):
    date: str = Field(pattern=r"^-?[0-9]{1,16}$", description="milliseconds since the epoch")


@bp.get("/providers")
@endpoint(summary="List the providers", responses={200: "The providers"})
def index():
    return [
        {
            "id": provider.id,
            "name": provider.name,
            "email": provider.email,
            "avatar_id": provider.avatar_id,
            "avatar": shapes.provider_avatar(provider.avatar),
        }
        for provider in appointments.providers()
    ]


@bp.get("/providers/<id:provider_id>/available")
@endpoint(
    query=DayQuery,
    invalid="Invalid date",
    summary="The provider's slots on the shop-local day of `date`",
    responses={200: "One entry per slot", 400: "Invalid date", 404: "Provider not found"},
)
def available(provider_id, query):
    slots = appointments.availability(provider_id=provider_id, moment=from_millis(query.date))
    return [
        {"time": slot.strftime("%H:%M"), "value": slot.isoformat(), "available": free}
        for slot, free in slots
    ]
