"""Request bodies: JSON routes take at most `MAX_JSON_KB` (64 KB), uploads `MAX_UPLOAD_MB`,
and a JSON body nested too deep is refused before it is parsed; neither is a 5xx, and
neither logs a traceback."""

import http.client
import io
import json
import logging
import os
import threading
import time

import pytest
from PIL import Image
from werkzeug.serving import make_server

LIMIT = 64 * 1024
TOO_LARGE = {"error": "Payload too large"}
VALIDATION_FAILS = {"error": "Validation fails"}

JSON_ROUTES = [
    ("POST", "/sessions"),
    ("POST", "/users"),
    ("PUT", "/users"),
    ("POST", "/appointments"),
]


@pytest.fixture
def live_url(app):
    """Serve the app over real HTTP on a free port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def no_traceback_logged(caplog):
    """Fail the test if anything at all logs an exception while it runs."""
    caplog.set_level(logging.DEBUG)
    yield
    # At teardown `caplog.records` holds the teardown's own; the request ran in "call".
    records = caplog.get_records("call")
    assert [r.getMessage() for r in records if r.exc_info or r.stack_info] == []
    assert not any("Traceback" in r.getMessage() for r in records)


def padded(body, size):
    """`body` as JSON text, padded with whitespace (still valid JSON) to `size` bytes."""
    text = json.dumps(body).encode()
    return text + b" " * (size - len(text))


def sign_in_body(person):
    return {"email": person.email, "password": person.password}


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES, ids=lambda value: value)
def test_a_json_body_over_64_kb_is_refused(client, api, no_traceback_logged, method, path):
    person = api.person()
    response = client.open(
        path,
        method=method,
        data=padded(sign_in_body(person), LIMIT + 1),
        content_type="application/json",
        headers=person.headers,
    )
    assert response.status_code == 413
    assert response.json == TOO_LARGE


def test_a_json_body_of_64_kb_is_read_whole(client, api):
    person = api.person()
    response = client.post(
        "/sessions", data=padded(sign_in_body(person), LIMIT), content_type="application/json"
    )
    assert response.status_code == 200, response.json
    assert response.json["user"]["id"] == person.id


def chunked_post(port, path, body, headers=None):
    """POST `body` with `Transfer-Encoding: chunked` and no Content-Length."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    headers = headers or {"Content-Type": "application/json"}
    connection.request("POST", path, body=chunks, headers=headers)
    response = connection.getresponse()
    answer = response.status, json.loads(response.read())
    connection.close()
    return answer


def test_a_chunked_json_body_is_held_to_the_same_limit(api, live_url, no_traceback_logged):
    person = api.person()
    body = sign_in_body(person)
    status, answer = chunked_post(live_url, "/sessions", padded(body, LIMIT))
    assert status == 200, answer
    assert answer["user"]["id"] == person.id
    assert chunked_post(live_url, "/sessions", padded(body, LIMIT + 1)) == (413, TOO_LARGE)


def test_an_image_of_a_megabyte_still_uploads(client, api):
    side = int((1024 * 1024 / 3) ** 0.5)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    assert len(buffer.getvalue()) > 1024 * 1024  # the test's own premise
    buffer.seek(0)
    person = api.person()
    uploaded = client.post("/files", data={"file": (buffer, "noise.png")}, headers=person.headers)
    assert uploaded.status_code == 200, uploaded.json


def nested(depth, *, kind):
    """A sign-in body whose `extra` field nests `depth - 1` arrays or objects deep."""
    inner = "1"
    for _ in range(depth - 1):
        inner = f"[{inner}]" if kind == "array" else f'{{"a":{inner}}}'
    return inner


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize(("method", "path"), JSON_ROUTES, ids=lambda value: value)
def test_a_body_nested_400_deep_is_refused_without_a_traceback(
    client, api, no_traceback_logged, method, path, kind, encoding
):
    person = api.person()
    body = f'{{"email": "{person.email}", "extra": {nested(400, kind=kind)}}}'.encode(encoding)
    assert len(body) < LIMIT
    response = client.open(
        path, method=method, data=body, content_type="application/json", headers=person.headers
    )
    assert response.status_code == 400
    assert response.json == VALIDATION_FAILS


@pytest.mark.parametrize(("depth", "status"), [(32, 200), (33, 400)])
def test_the_depth_limit_is_32(client, api, depth, status):
    """The object itself is one level; `extra` holds the other 31 or 32."""
    person = api.person()
    body = json.dumps(sign_in_body(person))[:-1] + f', "extra": {nested(depth, kind="array")}}}'
    assert json.loads(body)  # the test's own premise: valid JSON
    response = client.post("/sessions", data=body, content_type="application/json")
    assert response.status_code == status, response.json


@pytest.mark.parametrize("name", ["[" * 100, '{"a":' * 40, '\\"' + "[" * 60, "\\\\" + "{" * 60])
def test_brackets_inside_strings_do_not_count(client, api, name):
    email = "brackets@barber.example.com"
    body = {"name": name, "email": email, "password": "secret123"}
    created = client.post("/users", json=body)
    assert created.status_code == 200, created.json
    assert created.json["name"] == name


def multipart(data):
    """A multipart body with `data` as the field `file`, and its Content-Type."""
    boundary = "gobarber-boundary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_chunked_upload_is_held_to_the_upload_limit(api, live_url, no_traceback_logged):
    person = api.person()
    png = io.BytesIO()
    Image.frombytes("RGB", (600, 600), os.urandom(600 * 600 * 3)).save(png, "PNG")
    body, content_type = multipart(png.getvalue())
    headers = {**person.headers, "Content-Type": content_type}
    status, answer = chunked_post(live_url, "/files", body, headers)
    assert status == 200, answer
    assert answer["name"] == "a.png"
    body, _ = multipart(b"\x89PNG\r\n\x1a\n" + b"\0" * (7 * 1024 * 1024))
    assert chunked_post(live_url, "/files", body, headers) == (413, TOO_LARGE)


@pytest.mark.parametrize(
    "body",
    [b'"\\' * 30_000, b'["' + b'\\"[' * 20_000, b'{"a": "' + b"\\\\" * 30_000],
    ids=["unterminated escapes", "escaped quotes", "escaped backslashes"],
)
def test_the_depth_scan_takes_linear_time(client, body):
    """A scan that retried from every quote took ten seconds on the first of these."""
    started = time.monotonic()
    response = client.post("/sessions", data=body, content_type="application/json")
    elapsed = time.monotonic() - started
    assert response.status_code == 400
    assert response.json == VALIDATION_FAILS
    assert elapsed < 1, f"a {len(body)}-byte body took {elapsed:.1f} s"
