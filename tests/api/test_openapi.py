"""`/openapi.json` declares every answer, and every real answer matches what it declares.

The walk below uses the API as the two clients do, and validates each success body
against the schema the document gives for that operation and status. Response schemas
forbid undeclared keys and require every declared one, so a view that sends a key the
document does not list, or leaves one out, fails here.
"""

import io
import re
from datetime import UTC

import jsonschema_rs
import pytest
from PIL import Image
from sqlalchemy import select

from gobarber.extensions import db
from gobarber.models import PasswordReset

REF = re.compile(r"^#/components/schemas/(\w+)$")


@pytest.fixture
def document(client):
    served = client.get("/openapi.json")
    assert served.status_code == 200
    return served.json


def resolve(document, schema):
    """Follow a `$ref` into the document's components."""
    while "$ref" in schema:
        schema = document["components"]["schemas"][REF.match(schema["$ref"]).group(1)]
    return schema


def success_schemas(document):
    """Yield (method, path, status, schema) for every 2xx answer the document declares."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                if status.startswith("2"):
                    schema = answer.get("content", {}).get("application/json", {}).get("schema")
                    yield method, path, status, schema


class Contract:
    """Validate real answers against the document, remembering which operations it saw."""

    def __init__(self, document):
        self.document = document
        self.seen = set()

    def check(self, method, path, response):
        """Assert `response` is a declared success of the operation, shaped as declared."""
        assert response.status_code < 300, (method, path, response.status_code, response.json)
        answers = self.document["paths"][path][method]["responses"]
        assert str(response.status_code) in answers, (method, path, response.status_code)
        self.seen.add((method, path))
        if response.status_code == 204:
            assert response.data == b"", (method, path)
            assert "content" not in answers["204"], (method, path)
            return None
        schema = answers[str(response.status_code)]["content"]["application/json"]["schema"]
        validator = jsonschema_rs.validator_for(
            {**schema, "components": self.document["components"]}, validate_formats=True
        )
        errors = [
            f"{'/'.join(map(str, error.instance_path))}: {error.message}"
            for error in validator.iter_errors(response.json)
        ]
        assert errors == [], f"{method.upper()} {path}: {errors}"
        self.seen.add((method, path))
        return response.json


@pytest.fixture
def contract(document):
    return Contract(document)


def png():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, "PNG")
    buffer.seek(0)
    return buffer


def test_every_operation_declares_a_schema_for_its_success(document):
    declared = list(success_schemas(document))
    assert declared, "the document declares no success at all"
    for method, path, status, schema in declared:
        if status == "204":
            assert schema is None, f"{method.upper()} {path} 204 declares a body"
            continue
        assert schema, f"{method.upper()} {path} {status} has an empty schema"
        shape = resolve(document, schema)
        if shape.get("type") == "array":
            shape = resolve(document, shape["items"])
        assert shape.get("type") == "object" and shape.get("properties"), (method, path)
        assert shape.get("additionalProperties") is False, (method, path)
        assert set(shape.get("required", [])) == set(shape["properties"]), (method, path)


def test_every_operation_has_exactly_one_success(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            successes = [status for status in operation["responses"] if status.startswith("2")]
            assert len(successes) == 1, (method, path, successes)


def sign_up(client, contract, name, *, provider=False):
    """Sign up and in through the API; return the user's id and auth headers."""
    email = f"{name.lower()}@barber.example.com"
    body = {"name": name, "email": email, "password": "secret123", "provider": provider}
    user = contract.check("post", "/users", client.post("/users", json=body))
    signed = client.post("/sessions", json={"email": email, "password": "secret123"})
    session = contract.check("post", "/sessions", signed)
    return user["id"], {"Authorization": f"Bearer {session['token']}"}


def test_a_client_session_matches_the_document_answer_by_answer(client, contract, slot):
    _, as_customer = sign_up(client, contract, "Carla")
    provider, as_provider = sign_up(client, contract, "Diego", provider=True)
    sign_up(client, contract, "Bruno", provider=True)  # a provider without an avatar

    uploaded = client.post(
        "/files",
        data={"file": (png(), "face.png")},
        headers=as_provider,
        content_type="multipart/form-data",
    )
    avatar = contract.check("post", "/files", uploaded)
    profile = client.put(
        "/users", json={"name": "Diego B", "avatar_id": str(avatar["id"])}, headers=as_provider
    )
    assert contract.check("put", "/users", profile)["avatar"]["id"] == avatar["id"]
    signed = client.post(
        "/sessions", json={"email": "diego@barber.example.com", "password": "secret123"}
    )
    assert contract.check("post", "/sessions", signed)["user"]["avatar"] is not None

    providers = contract.check("get", "/providers", client.get("/providers", headers=as_customer))
    assert sorted(p["avatar"] is None for p in providers) == [False, True]

    day = slot(days=2, hour=10)
    millis = int(day.timestamp() * 1000)
    contract.check(
        "get",
        "/providers/{provider_id}/available",
        client.get(f"/providers/{provider}/available?date={millis}", headers=as_customer),
    )
    booking = {"provider_id": provider, "date": day.isoformat()}
    booked = client.post("/appointments", json=booking, headers=as_customer)
    appointment = contract.check("post", "/appointments", booked)["id"]

    listed = client.get("/appointments", headers=as_customer)
    assert contract.check("get", "/appointments", listed)[0]["provider"]["avatar"] is not None
    shown = client.get(f"/appointments/{appointment}", headers=as_customer)
    assert (
        contract.check("get", "/appointments/{appointment_id}", shown)["cancellation_mail"] is None
    )

    for path in ("/schedule", "/schedules"):
        day_at_noon = day.replace(hour=12).astimezone(UTC).isoformat()
        scheduled = client.get(path, query_string={"date": day_at_noon}, headers=as_provider)
        assert len(contract.check("get", path, scheduled)) == 1

    canceled = client.delete(f"/appointments/{appointment}", headers=as_customer)
    mail = contract.check("delete", "/appointments/{appointment_id}", canceled)["cancellation_mail"]
    assert mail["status"] == "queued"
    shown = client.get(f"/appointments/{appointment}", headers=as_provider)
    assert contract.check("get", "/appointments/{appointment_id}", shown)["canceled_at"]

    notifications = client.get("/notifications", headers=as_provider)
    newest = contract.check("get", "/notifications", notifications)[0]
    read = client.put(f"/notifications/{newest['_id']}", headers=as_provider)
    assert contract.check("put", "/notifications/{notification_id}", read)["read"] is True
    contract.check("get", "/notifications", client.get("/notifications", headers=as_customer))

    forgot = client.post("/password/forgot", json={"email": "carla@barber.example.com"})
    contract.check("post", "/password/forgot", forgot)
    with client.application.app_context():
        reset = db.session.scalar(select(PasswordReset))
        token = reset.token(client.application.config["SECRET_KEY"])
    body = {"token": token, "password": "newsecret1", "password_confirmation": "newsecret1"}
    contract.check("post", "/password/reset", client.post("/password/reset", json=body))

    documented = {
        (method, path) for path, item in contract.document["paths"].items() for method in item
    }
    assert documented - contract.seen == set(), "walk these operations too"
