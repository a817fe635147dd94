"""`/openapi.json` declares every answer, and every real answer matches what it declares.

The first walk below uses the API as the two clients do, and validates each success body
against the schema the document gives for that operation and status. Response schemas
forbid undeclared keys and require every declared one, so a view that sends a key the
document does not list, or leaves one out, fails here. The second walk goes through the
service's own routes (its home and reference, the probes, the operator pages), whose
answers are pages, files and redirects as well as JSON: each must be of a status and a
media type its operation declares.
"""

import io
import re
from datetime import UTC

import pytest
from PIL import Image
from sqlalchemy import select

from gobarber.extensions import db
from gobarber.models import PasswordReset, User
from tests.documents import Contract
from tests.forms import admin_sign_in, form_token

REF = re.compile(r"^#/components/schemas/(\w+)$")
# The tags of the service's own routes; every other operation is the clients' contract.
SERVICE_TAGS = {"service", "probes", "operator pages"}
# The shop's pages are walked by their own tests (tests/web/test_*_routes.py).
PAGE_TAGS = {"shop pages"}


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


def successes(document):
    """Yield (method, path, status, content) for every 2xx answer the document declares."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                if status.startswith("2"):
                    yield method, path, status, answer.get("content")


def operations(document, *, service):
    """Return (method, path) of the service's own operations, or of the clients' contract
    (the shop's pages are neither)."""
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation["tags"][0] not in PAGE_TAGS
        and (operation["tags"][0] in SERVICE_TAGS) == service
    }


@pytest.fixture
def contract(document):
    return Contract(document)


def png():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, "PNG")
    buffer.seek(0)
    return buffer


def test_every_operation_declares_what_its_success_carries(document):
    declared = list(successes(document))
    assert declared, "the document declares no success at all"
    for method, path, status, content in declared:
        if status == "204":
            assert content is None, f"{method.upper()} {path} 204 declares a body"
            continue
        assert content, f"{method.upper()} {path} {status} declares no content"
        if "application/json" not in content:
            continue  # a page or a file: its media types are what it declares
        schema = content["application/json"].get("schema")
        assert schema, f"{method.upper()} {path} {status} has an empty schema"
        shape = resolve(document, schema)
        if shape.get("type") == "array":
            shape = resolve(document, shape["items"])
        assert shape.get("type") == "object" and shape.get("properties"), (method, path)
        assert shape.get("additionalProperties") is False, (method, path)
        assert set(shape.get("required", [])) == set(shape["properties"]), (method, path)


def test_every_operation_of_the_clients_contract_has_exactly_one_success(document):
    contract = operations(document, service=False)
    assert contract, "the document declares none of the clients' operations"
    for method, path in contract:
        answers = document["paths"][path][method]["responses"]
        declared = [status for status in answers if status.startswith("2")]
        assert len(declared) == 1, (method, path, declared)


def test_every_operation_is_tagged_and_every_tag_listed(document):
    listed = [tag["name"] for tag in document["tags"]]
    assert len(listed) == len(set(listed))
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert len(operation["tags"]) == 1 and operation["tags"][0] in listed, (method, path)
    assert set(listed) >= SERVICE_TAGS


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
    contract.check("get", "/files/{path}", client.get(f"/files/{avatar['path']}"))
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
    month = {"year": day.year, "month": day.month}
    contract.check(
        "get",
        "/providers/{provider_id}/month-availability",
        client.get(
            f"/providers/{provider}/month-availability", query_string=month, headers=as_customer
        ),
    )
    contract.check(
        "get",
        "/providers/{provider_id}/day-availability",
        client.get(
            f"/providers/{provider}/day-availability",
            query_string={**month, "day": day.day},
            headers=as_customer,
        ),
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

    documented = operations(contract.document, service=False)
    assert documented - contract.seen == set(), "walk these operations too"


def make_admin(app, person):
    with app.app_context():
        db.session.get(User, person.id).admin = True
        db.session.commit()


def test_the_services_own_routes_answer_as_documented(app, client, api, contract):
    answer = contract.answer
    about = answer("get", "/", client.get("/", headers={"Accept": "application/json"}))
    answer("get", "/", client.get("/", headers={"Accept": "text/html"}))
    page = client.get("/docs")
    answer("get", "/docs", page)
    css = re.search(r'href="(/docs/swagger-ui/[^"]+\.css)"', page.text).group(1)
    swagger_ui = "/docs/swagger-ui/{release}/{name}"
    stylesheet = client.get(css)
    answer("get", swagger_ui, stylesheet)
    unchanged = client.get(css, headers={"If-None-Match": stylesheet.headers["ETag"]})
    assert unchanged.status_code == 304
    answer("get", swagger_ui, unchanged)
    answer("get", swagger_ui, client.get("/docs/swagger-ui/0.0.0/swagger-ui.css"))
    answer("get", about["links"]["openapi"], client.get("/openapi.json"))
    answer("get", "/health", client.get("/health"))
    answer("get", "/health/mail", client.get("/health/mail"))  # 503: no worker runs here
    answer("get", "/metrics", client.get("/metrics"))

    answer("get", "/admin/queue", client.get("/admin/queue"))  # to the sign-in form
    answer("get", "/admin/login", client.get("/admin/login"))
    answer("post", "/admin/login", client.post("/admin/login", data={"email": "x@y.z"}))
    operator = api.person("Operadora")
    answer("post", "/admin/login", admin_sign_in(client, operator.email, "not-the-password"))
    signed_in = admin_sign_in(client, operator.email, operator.password)
    assert signed_in.status_code == 302
    answer("post", "/admin/login", signed_in)
    assert client.get("/admin/queue").status_code == 403
    answer("get", "/admin/queue", client.get("/admin/queue"))
    make_admin(app, operator)
    assert client.get("/admin/queue").status_code == 200
    answer("get", "/admin/queue", client.get("/admin/queue"))
    token = form_token(client, "/admin/queue")
    for path in ("/admin/queue/retry", "/admin/queue/release"):
        acted = client.post(path, data={"all": "1", "csrf_token": token})
        assert acted.status_code == 302
        answer("post", path, acted)
    answer("post", "/admin/logout", client.post("/admin/logout", data={"csrf_token": token}))

    documented = operations(contract.document, service=True)
    assert documented - contract.seen == set(), "walk these operations too"
