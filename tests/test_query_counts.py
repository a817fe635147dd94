"""Lists run a fixed number of SQL statements, however many rows they show (no N+1).

Each list is measured with one row behind it and again with fifteen, every row bringing
its own person with an avatar file, so a lazy load per row would show as extra statements.
"""

import uuid

import pytest

from gobarber.extensions import db
from gobarber.models import Appointment, File, User

MAX_STATEMENTS = 6
# Shop hours of the rows on one day: the first is a slot, and all fifteen fit in the day.
DAY_HOURS = [10, *range(5, 10), *range(11, 20)]


def add_user(app, *, provider):
    """Insert a user with an avatar file directly; return the id."""
    with app.app_context():
        tag = uuid.uuid4().hex[:10]
        user = User(
            name=f"User {tag}",
            email=f"{tag}@barber.example.com",
            password_hash="not-a-hash",
            provider=provider,
            avatar=File(name=f"{tag}.png", path=f"{tag}.png"),
        )
        db.session.add(user)
        db.session.commit()
        return user.id


def add_appointment(app, *, user_id, provider_id, date):
    with app.app_context():
        db.session.add(Appointment(user_id=user_id, provider_id=provider_id, date=date))
        db.session.commit()


# Each scenario returns (who asks, the URL, add the n-th row, rows the answer shows).


def provider_list(app, api, slot):
    def add_row(n):
        add_user(app, provider=True)

    return api.person("Customer"), "/providers", add_row, len


def appointment_list(app, api, slot):
    customer = api.person("Customer")

    def add_row(n):
        provider_id = add_user(app, provider=True)
        date = slot(days=2 + n // 12, hour=8 + n % 12)
        add_appointment(app, user_id=customer.id, provider_id=provider_id, date=date)

    return customer, "/appointments", add_row, len


def day_rows(app, provider, slot):
    def add_row(n):
        customer_id = add_user(app, provider=False)
        date = slot(days=3, hour=DAY_HOURS[n])
        add_appointment(app, user_id=customer_id, provider_id=provider.id, date=date)

    return add_row


def schedule(app, api, slot):
    provider = api.provider("Barber")
    url = f"/schedule?date={slot(days=3, hour=12).isoformat()}"
    return provider, url, day_rows(app, provider, slot), len


def availability(app, api, slot):
    provider = api.provider("Barber")
    millis = int(slot(days=3, hour=12).timestamp() * 1000)
    url = f"/providers/{provider.id}/available?date={millis}"

    def taken(body):
        return sum(not entry["available"] for entry in body)

    return provider, url, day_rows(app, provider, slot), taken


@pytest.mark.parametrize(
    "scenario, shown_for_15",
    [(provider_list, 15), (appointment_list, 15), (schedule, 15), (availability, 12)],
    ids=["providers", "appointments", "schedule", "availability"],
)
def test_statements_do_not_grow_with_rows(
    app, client, api, slot, count_queries, scenario, shown_for_15
):
    asker, url, add_row, shown = scenario(app, api, slot)
    counts, sizes, added = [], [], 0
    for rows in (1, 15):
        for n in range(added, rows):
            add_row(n)
        added = rows
        with count_queries() as counter:
            response = client.get(url, headers=asker.headers)
        assert response.status_code == 200, response.json
        counts.append(counter.count)
        sizes.append(shown(response.json))

    # Availability has twelve slots: fifteen rows on the day take all of them.
    assert sizes == [1, shown_for_15]
    assert counts[0] == counts[1], counts
    assert counts[1] <= MAX_STATEMENTS
