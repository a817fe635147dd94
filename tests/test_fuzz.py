"""Fuzz every operation of `/openapi.json` with schemathesis: no input makes the app fail.

Schemathesis generates bodies, query strings and path parameters from the app's own
OpenAPI document, valid ones and invalid ones, and they are sent with a real provider's
token, so authentication passes and the validation layer and the services behind it are
what gets exercised. The checks: no answer is a 5xx, every answer is JSON, and no answer
says the token was refused.
"""

from datetime import UTC, datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gobarber import create_app
from tests.apps import running_app, shop_slot
from tests.people import Api

TOKEN_REFUSALS = ({"error": "Token not provided"}, {"error": "Token invalid"})


def _operations():
    """Read the operations from the document of an app that is never served."""
    app = create_app(
        {"APP_ENV": "test", "SECRET_KEY": "x" * 32, "SQLALCHEMY_DATABASE_URI": "sqlite://"}
    )
    # The JSON API only: the service pages, probes and operator pages answer HTML or
    # text and are walked by tests/api/test_openapi.py, the shop's pages by their own
    # tests; a file is bytes, and its path
    # has no sample to fuzz from.
    schema = (
        schemathesis.openapi.from_wsgi("/openapi.json", app)
        .exclude(tag=["service", "probes", "operator pages", "shop pages"])
        .exclude(method="GET", path="/files/{path}")
    )
    return [result.ok() for result in schema.get_all_operations()]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def fuzz_app(database_url, tmp_path_factory):
    """One app for the whole module, so the data set up once lives across every example."""
    with running_app(database_url, tmp_path_factory.mktemp("fuzz")) as app:
        yield app


@pytest.fixture(scope="module")
def seeded(fuzz_app):
    """Sign a provider in, with an appointment each way and a notification, once.

    Returns the provider's headers and what exists: ids by path parameter name and a day
    with appointments, so that some examples get past the 404s to real rows.
    """
    client = fuzz_app.test_client()
    api = Api(client)
    provider = api.provider("Fuzzing Barber")
    colleague = api.provider("Other Barber")
    customer = api.person("Customer")
    appointment_ids = []
    for booker, barber, hour in ((provider, colleague, 10), (customer, provider, 11)):
        booked = api.book(booker, barber, shop_slot(fuzz_app, days=3, hour=hour))
        assert booked.status_code == 200, booked.json
        appointment_ids.append(booked.json["id"])
    notifications = client.get("/notifications", headers=provider.headers).json
    known = {
        "schedule_date": shop_slot(fuzz_app, days=3, hour=0).isoformat(),
        "provider_id": [provider.id, colleague.id],
        "appointment_id": appointment_ids,
        "notification_id": [int(row["_id"]) for row in notifications],
    }
    assert all(known.values()), known
    return provider.headers, known


def _cases(operation, known):
    """Valid and invalid examples, plus valid ones aimed at rows that exist."""
    strategies = [
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
    ]
    names = [p.name for p in operation.path_parameters]
    if names:
        existing = st.fixed_dictionaries({name: st.sampled_from(known[name]) for name in names})
        strategies.append(
            existing.flatmap(lambda values: operation.as_strategy(path_parameters=values))
        )
    if operation.path in ("/schedule", "/schedules"):
        # Free text rarely parses as a date; aim some examples at real days, from year 1 to 9999.
        dates = st.one_of(
            st.just(known["schedule_date"]),
            st.datetimes(timezones=st.none() | st.just(UTC)).map(datetime.isoformat),
        )
        strategies.append(dates.flatmap(lambda date: operation.as_strategy(query={"date": date})))
    return st.one_of(strategies)


def test_the_document_lists_every_resource():
    assert {operation.label for operation in OPERATIONS} >= {
        "POST /users",
        "PUT /users",
        "POST /sessions",
        "POST /files",
        "GET /providers",
        "GET /providers/{provider_id}/available",
        "GET /appointments",
        "POST /appointments",
        "GET /appointments/{appointment_id}",
        "DELETE /appointments/{appointment_id}",
        "GET /schedule",
        "GET /schedules",
        "GET /notifications",
        "PUT /notifications/{notification_id}",
    }


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_no_input_makes_a_server_error(operation, fuzz_app, seeded):
    provider_headers, known = seeded
    client = fuzz_app.test_client()

    @given(case=_cases(operation, known))
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def send(case):
        request = case.as_transport_kwargs(headers=provider_headers)
        # Negative cases may drop the security header; the token must always go along.
        request["headers"].update(provider_headers)
        response = client.open(**request)
        sent = f"{case.method} {request['path']} query={case.query} body={case.body!r}"
        answer = f"{response.status} {response.content_type} {response.get_data()[:500]!r}"
        assert response.status_code < 500, f"{sent} -> {answer}"
        if response.status_code == 204:  # no body, so no type
            assert response.get_data() == b"", f"{sent} -> {answer}"
            return
        assert response.content_type == "application/json", f"{sent} -> {answer}"
        assert response.json not in TOKEN_REFUSALS, f"{sent} -> {answer}"

    send()
