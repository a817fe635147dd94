"""Appointments: list, book, follow and cancel."""

from flask import Blueprint
from pydantic import BaseModel, Field

from gobarber.api.contract import current_user, endpoint, signed_in
from gobarber.api.fields import Id, Moment
from gobarber.api.schemas import AppointmentDetail, AppointmentOut, AppointmentSummary
from gobarber.services import appointments

bp = Blueprint("appointments", __name__)


class PageQuery(BaseModel):
    page: int = Field(1, ge=1, le=1_000_000)


class Booking(BaseModel):
    provider_id: Id
    date: Moment


@bp.get("/appointments")
@endpoint(
    query=PageQuery,
    summary="The signed-in user's non-canceled appointments, 20 a page",
    responses={
        200: (list[AppointmentSummary], "A page of appointments"),
        400: "Validation fails",
    },
)
def index(query):
    rows = appointments.customer_appointments(user=current_user(), page=query.page)
    return [AppointmentSummary.of(row) for row in rows]


@bp.post("/appointments")
@endpoint(
    body=Booking,
    summary="Book the hour that holds `date` with a provider",
    responses={
        200: (AppointmentOut, "The appointment"),
        400: (
            "Validation fails, the slot is not available or too far ahead, or the customer "
            "has too many active appointments"
        ),
        401: "You can only create appointments with providers",
    },
)
def create(body):
    row = appointments.book(customer=current_user(), provider_id=body.provider_id, start=body.date)
    return AppointmentOut.of(row)


@bp.get("/appointments/<id:appointment_id>")
@endpoint(
    summary=(
        "One appointment of the signed-in user, with the status of its cancellation mail "
        "and of its reminder (`scheduled` until it is due)"
    ),
    responses={200: (AppointmentDetail, "The appointment"), 404: "Appointment not found"},
)
def show(appointment_id):
    row = appointments.find_for(user=current_user(), appointment_id=appointment_id)
    return AppointmentDetail.of(
        row,
        appointments.cancellation_mail(appointment=row),
        appointments.reminder_mail(appointment=row),
    )


@bp.delete("/appointments/<id:appointment_id>")
@endpoint(
    summary=(
        "Cancel an appointment at least 2 hours ahead; the provider is mailed, or the mail "
        "is held when the customer is over the day's cancellation mails; the customer's "
        "reminder is canceled"
    ),
    responses={
        200: (AppointmentDetail, "The canceled appointment"),
        400: "Appointment already canceled",
        401: "Not yours, or less than 2 hours ahead",
        404: "Appointment not found",
    },
    confirms_token=True,
)
def cancel(appointment_id):
    row, delivery, reminder = appointments.cancel(
        signed_in=signed_in(), appointment_id=appointment_id
    )
    return AppointmentDetail.of(row, delivery, reminder)
