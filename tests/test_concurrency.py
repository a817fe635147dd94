"""Races against the real PostgreSQL: many customers for one slot, two cancels of one row.

Each request runs in its own thread with its own test client; a barrier releases them
together, so they meet in the database rather than one after the other in Python.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from gobarber.extensions import db
from gobarber.models import Appointment, MailDelivery, Notification
from gobarber.models.mail_delivery import MailKind

pytestmark = pytest.mark.postgres_only

RACERS = 20


def fire_together(app, requests):
    """Run each `request(client)` in its own thread, all released at once; return answers."""
    barrier = threading.Barrier(len(requests))

    def run(request):
        client = app.test_client()
        barrier.wait(timeout=30)
        response = request(client)
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(run, requests))


def count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_one_slot_many_customers_one_winner(app, api, slot):
    provider = api.provider("Barber")
    customers = [api.person(f"Customer {n}") for n in range(RACERS)]
    start = slot(days=2, hour=10)

    def booking(customer):
        body = {"provider_id": provider.id, "date": start.isoformat()}
        return lambda client: client.post("/appointments", json=body, headers=customer.headers)

    answers = fire_together(app, [booking(customer) for customer in customers])

    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] + [400] * (RACERS - 1)
    assert [body for status, body in answers if status == 400] == [
        {"error": "Appointment date is not available"}
    ] * (RACERS - 1)
    winner = next(body for status, body in answers if status == 200)
    active = (Appointment.provider_id == provider.id, Appointment.canceled_at.is_(None))
    assert count(app, Appointment, *active, Appointment.date == start) == 1
    assert count(app, Appointment) == 1
    assert count(app, Appointment, Appointment.id == winner["id"]) == 1
    # The losers' notifications went with their rolled-back bookings.
    assert count(app, Notification, Notification.user_id == provider.id) == 1


def test_two_cancels_of_one_appointment_one_mail(app, api, slot):
    provider, customer = api.provider("Barber"), api.person("Customer")
    booked = api.book(customer, provider, slot(days=2, hour=10)).json

    def cancel(client):
        return client.delete(f"/appointments/{booked['id']}", headers=customer.headers)

    answers = fire_together(app, [cancel, cancel])

    assert sorted(status for status, _ in answers) == [200, 400]
    assert next(body for status, body in answers if status == 400) == {
        "error": "Appointment already canceled"
    }
    assert next(body for status, body in answers if status == 200)["canceled_at"] is not None
    cancellation = MailDelivery.kind == MailKind.CANCELLATION
    assert count(app, MailDelivery, cancellation) == 1
    assert count(app, MailDelivery, cancellation, MailDelivery.appointment_id == booked["id"]) == 1
