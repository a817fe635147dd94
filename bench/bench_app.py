"""The app the web benchmarks serve: the real `create_app()` plus two routes of their own.

`gunicorn --pythonpath bench bench_app:app`. The product has neither route:
- `GET /bench/ping` answers "ok": the trivial route, the limit of the same server.
- `DELETE /bench/sync-cancel/<id>`: the same cancellation done the old way, the provider's
  mail sent with Flask-Mail inside the request, as the original GoBarber did before its
  queue; the baseline of the cancel-latency benchmark.
"""

from flask import Blueprint, render_template
from flask_mail import Message
from sqlalchemy import update
from sqlalchemy.orm import joinedload

from gobarber import create_app
from gobarber.api.contract import authenticate, current_user
from gobarber.api.schemas import AppointmentOut
from gobarber.errors import GobarberError, NotFound, Unauthorized
from gobarber.extensions import db, mail
from gobarber.models import Appointment
from gobarber.services.appointments import is_cancelable
from gobarber.shop_time import describe_pt_br, now

bench = Blueprint("bench", __name__)


@bench.get("/bench/ping")
def ping():
    return "ok"


@bench.delete("/bench/sync-cancel/<int:appointment_id>")
def sync_cancel(appointment_id):
    authenticate()
    appointment = db.session.get(
        Appointment,
        appointment_id,
        options=[joinedload(Appointment.provider), joinedload(Appointment.user)],
    )
    if appointment is None:
        raise NotFound("Appointment not found")
    if appointment.user_id != current_user().id:
        raise Unauthorized("You don't have permission to cancel this appointment.")
    if appointment.canceled_at is not None:
        raise GobarberError("Appointment already canceled")
    if not is_cancelable(appointment):
        raise Unauthorized("You can only cancel appointments 2 hours in advance.")
    db.session.execute(
        update(Appointment)
        .where(Appointment.id == appointment.id)
        .values(canceled_at=now(), updated_at=now())
    )
    db.session.commit()
    provider = appointment.provider
    context = {
        "provider": provider.name,
        "user": appointment.user.name,
        "when": describe_pt_br(appointment.date),
    }
    mail.send(
        Message(
            subject="Agendamento cancelado",
            recipients=[f"{provider.name} <{provider.email}>"],
            body=render_template("mail/cancellation.txt", **context),
            html=render_template("mail/cancellation.html", **context),
        )
    )
    db.session.refresh(appointment)
    return AppointmentOut.of(appointment).model_dump(mode="json", by_alias=True)


app = create_app()
app.register_blueprint(bench)
