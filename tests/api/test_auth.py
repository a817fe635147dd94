"""The bearer token on every authenticated route, and what every route shares: JSON errors
for unknown routes and methods, open CORS and the OpenAPI document."""

import re
import warnings
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from sqlalchemy import delete

from gobarber.extensions import db
from gobarber.models import User

AUTHENTICATED = [
    ("PUT", "/users"),
    ("POST", "/files"),
    ("GET", "/providers"),
    ("GET", "/providers/1/available"),
    ("GET", "/appointments"),
    ("POST", "/appointments"),
    ("GET", "/appointments/1"),
    ("DELETE", "/appointments/1"),
    ("GET", "/schedule"),
    ("GET", "/schedules"),
    ("GET", "/notifications"),
    ("PUT", "/notifications/1"),
]
ROUTE_IDS = [f"{method} {path}" for method, path in AUTHENTICATED]
NOT_PROVIDED = {"error": "Token not provided"}
INVALID = {"error": "Token invalid"}

# Every route of the contract, as OpenAPI writes it (path parameters renamed to {}).
# `GET /files/<path>` serves bytes, not JSON, and is left out of the document.
CONTRACT_OPERATIONS = {
    ("post", "/users"),
    ("put", "/users"),
    ("post", "/sessions"),
    ("post", "/files"),
    ("get", "/providers"),
    ("get", "/providers/{}/available"),
    ("get", "/appointments"),
    ("post", "/appointments"),
    ("get", "/appointments/{}"),
    ("delete", "/appointments/{}"),
    ("get", "/schedule"),
    ("get", "/schedules"),
    ("get", "/notifications"),
    ("put", "/notifications/{}"),
}


def call(client, method, path, headers=None):
    return client.open(path, method=method, headers=headers or {})


def token_for(user_id, secret, *, issued=None, lifetime=timedelta(days=7), algorithm="HS256"):
    issued = issued or datetime.now(UTC)
    payload = {"id": user_id, "iat": issued, "exp": issued + lifetime}
    return jwt.encode(payload, secret, algorithm=algorithm)


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED, ids=ROUTE_IDS)
def test_no_header_means_no_token(client, method, path):
    refused = call(client, method, path)
    assert refused.status_code == 401
    assert refused.json == NOT_PROVIDED


def bad_headers(app, person):
    """Authorization headers that must not sign anyone in, by what is wrong with them."""
    secret = app.config["SECRET_KEY"]
    with warnings.catch_warnings():
        # The app's test secret is short for HS512; that token only has to exist.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        hs512 = token_for(person.id, secret, algorithm="HS512")
    expired = token_for(person.id, secret, issued=datetime.now(UTC) - timedelta(days=8))
    no_id = jwt.encode({"exp": datetime.now(UTC) + timedelta(days=1)}, secret)
    return {
        "garbage": "Bearer not.a.jwt",
        "random-word": "Bearer garbage",
        "expired": f"Bearer {expired}",
        "forged": f"Bearer {token_for(person.id, 'another-secret-long-enough-for-hs256!!')}",
        "alg-none": "Bearer " + jwt.encode({"id": person.id}, None, algorithm="none"),
        "hs512": f"Bearer {hs512}",
        "no-id": f"Bearer {no_id}",
        "text-id": f"Bearer {token_for('abc', secret)}",
        "unknown-id": f"Bearer {token_for(999999, secret)}",
        "huge-id": f"Bearer {token_for(10**30, secret)}",
        "one-word-token": person.token,
        "one-word-bearer": "Bearer",
        "three-words": f"Bearer garbage {person.token}",
    }


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED, ids=ROUTE_IDS)
def test_a_bad_token_is_invalid(app, client, api, method, path):
    person = api.provider()
    headers = bad_headers(app, person)
    answers = {
        kind: (answer.status_code, answer.json)
        for kind, header in headers.items()
        for answer in [call(client, method, path, {"Authorization": header})]
    }
    assert answers == {kind: (401, INVALID) for kind in headers}


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED, ids=ROUTE_IDS)
def test_an_empty_header_means_no_token(client, method, path):
    refused = call(client, method, path, {"Authorization": ""})
    assert refused.status_code == 401
    assert refused.json == NOT_PROVIDED


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED, ids=ROUTE_IDS)
def test_a_deleted_users_token_is_invalid(app, client, api, method, path):
    person = api.provider()
    assert call(client, method, path, person.headers).json != INVALID
    with app.app_context():
        db.session.execute(delete(User).where(User.id == person.id))
        db.session.commit()
    refused = call(client, method, path, person.headers)
    assert refused.status_code == 401
    assert refused.json == INVALID


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED, ids=ROUTE_IDS)
def test_only_the_second_word_of_the_header_is_read(client, api, method, path):
    person = api.provider()
    bearer = call(client, method, path, {"Authorization": f"Bearer {person.token}"})
    baerer = call(client, method, path, {"Authorization": f"Baerer {person.token}"})
    assert bearer.json not in (NOT_PROVIDED, INVALID)
    assert (baerer.status_code, baerer.json) == (bearer.status_code, bearer.json)


def test_a_token_is_accepted_until_it_expires(app, client, api):
    person = api.person()
    almost = token_for(
        person.id,
        app.config["SECRET_KEY"],
        issued=datetime.now(UTC) - timedelta(days=6, hours=23),
    )
    accepted = client.get("/notifications", headers={"Authorization": f"Bearer {almost}"})
    assert accepted.status_code == 200


# ---- what every route shares ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/nothing-here", "/users/1", "/providers/1", "/api/users"])
def test_an_unknown_route_is_a_json_404(client, path):
    missing = client.get(path)
    assert missing.status_code == 404
    assert missing.is_json
    assert missing.json == {"error": "Not found"}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/users", {"POST", "PUT"}),
        ("DELETE", "/users", {"POST", "PUT"}),
        ("GET", "/sessions", {"POST"}),
        ("PUT", "/providers", {"GET"}),
        ("PATCH", "/appointments", {"GET", "POST"}),
        ("POST", "/notifications/1", {"PUT"}),
    ],
)
def test_a_wrong_method_is_a_json_405(client, method, path, allowed):
    refused = call(client, method, path)
    assert refused.status_code == 405
    assert refused.is_json
    assert refused.json == {"error": "Method not allowed"}
    assert allowed <= {m.strip() for m in refused.headers["Allow"].split(",")}


ORIGIN = "http://localhost:3000"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/sessions"), ("POST", "/users"), *AUTHENTICATED],
)
def test_a_cors_preflight_is_allowed_from_any_origin(client, method, path):
    preflight = client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    allowed_methods = preflight.headers["Access-Control-Allow-Methods"].replace(" ", "")
    assert method in allowed_methods.split(",")
    allowed_headers = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers


def test_an_error_answer_carries_cors_headers_too(client):
    """A browser client can only read the error text if the 401 allows its origin."""
    refused = client.get("/appointments", headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)


def _openapi_structure_errors(document):
    errors = []
    if not re.fullmatch(r"3\.\d+\.\d+", str(document.get("openapi"))):
        errors.append("openapi is not 3.x.y")
    info = document.get("info", {})
    if not (isinstance(info.get("title"), str) and isinstance(info.get("version"), str)):
        errors.append("info needs title and version")
    for path, item in document.get("paths", {}).items():
        if not path.startswith("/"):
            errors.append(f"{path} does not start with /")
        declared = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            if "responses" not in operation or not operation["responses"]:
                errors.append(f"{method} {path} has no responses")
            params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            if params != declared:
                errors.append(f"{method} {path} declares path parameters {params}")
            for requirement in operation.get("security", []):
                for scheme in requirement:
                    if scheme not in document["components"]["securitySchemes"]:
                        errors.append(f"{method} {path} uses an unknown scheme {scheme}")
    return errors


def test_the_openapi_document_is_valid_and_lists_every_contract_path(client):
    served = client.get("/openapi.json")
    assert served.status_code == 200
    document = served.json
    try:
        from openapi_spec_validator import validate
    except ImportError:
        assert _openapi_structure_errors(document) == []
    else:
        validate(document)
    listed = {
        (method, re.sub(r"{\w+}", "{}", path))
        for path, item in document["paths"].items()
        for method in item
    }
    assert CONTRACT_OPERATIONS - listed == set()
    public = {("post", "/users"), ("post", "/sessions")}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            key = (method, re.sub(r"{\w+}", "{}", path))
            if key in CONTRACT_OPERATIONS:
                assert ("security" in operation) == (key not in public), key


@pytest.mark.parametrize("path", ["/users", "/sessions"])
def test_a_body_over_the_size_limit_is_a_json_413(app, client, path):
    too_big = (app.config["MAX_UPLOAD_MB"] + 2) * 1024 * 1024
    body = {"name": "x" * too_big, "email": "big@barber.example.com", "password": "secret123"}
    refused = client.post(path, json=body)
    assert refused.status_code == 413
    assert refused.json == {"error": "Payload too large"}
