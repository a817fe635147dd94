"""Avatar uploads (`POST /files`) and serving them back (`GET /files/<path>`).

The module runs with `MAX_UPLOAD_MB = 1`, so the size limit is cheap to cross.
"""

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.uploads import noise_png, stored_files, upload

NOT_AN_IMAGE = {"error": "File must be an image (JPEG, PNG, GIF or WebP)"}


@pytest.fixture
def config_overrides():
    return {"MAX_UPLOAD_MB": 1}


def image_bytes(image_format, size=(16, 12), color="crimson"):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, image_format)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image_format", "filename", "extension", "mimetype"),
    [
        ("PNG", "avatar.png", ".png", "image/png"),
        ("JPEG", "photo.jpg", ".jpg", "image/jpeg"),
        ("JPEG", "photo.JPEG", ".jpeg", "image/jpeg"),
        ("GIF", "anim.gif", ".gif", "image/gif"),
        ("WEBP", "modern.webp", ".webp", "image/webp"),
    ],
)
def test_an_image_is_stored_and_served_back(
    app, client, api, image_format, filename, extension, mimetype
):
    person = api.person()
    data = image_bytes(image_format)
    uploaded = upload(client, person, data, filename)
    assert uploaded.status_code == 200, uploaded.json
    body = uploaded.json
    assert list(body) == ["url", "id", "name", "path", "createdAt", "updatedAt"]
    assert isinstance(body["id"], int)
    assert body["name"] == filename
    assert re.fullmatch(r"[0-9a-f]{32}" + re.escape(extension), body["path"])
    assert body["url"] == app.config["APP_URL"] + "/files/" + body["path"]
    timestamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(timestamp, body["createdAt"])
    assert re.fullmatch(timestamp, body["updatedAt"])
    served = client.get(f"/files/{body['path']}")
    assert served.status_code == 200
    assert served.data == data
    assert served.mimetype == mimetype
    assert stored_files(app) == ([body["path"]], [body["path"]])


def test_each_upload_gets_a_name_of_its_own(client, api):
    person = api.person()
    data = image_bytes("PNG")
    first = upload(client, person, data, "same.png").json
    second = upload(client, person, data, "same.png").json
    assert first["path"] != second["path"]
    assert first["id"] != second["id"]


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        pytest.param(b"just some words\n", "notes.txt", id="text"),
        pytest.param(b"just some words\n", "avatar.png", id="text-named-png"),
        pytest.param(b"<html><script>alert(1)</script></html>", "x.jpg", id="html-named-jpg"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "broken.png", id="png-header-only"),
        pytest.param(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "doc.pdf", id="pdf"),
    ],
)
def test_a_file_that_is_not_an_image_is_refused(app, client, api, data, filename):
    person = api.person()
    refused = upload(client, person, data, filename)
    assert refused.status_code == 400
    assert refused.json == NOT_AN_IMAGE
    assert stored_files(app) == ([], [])


def test_an_image_format_outside_the_list_is_refused(app, client, api):
    person = api.person()
    refused = upload(client, person, image_bytes("BMP"), "old.bmp")
    assert refused.status_code == 400
    assert refused.json == NOT_AN_IMAGE


def test_an_empty_file_is_refused(app, client, api):
    person = api.person()
    refused = upload(client, person, b"", "empty.png")
    assert refused.status_code == 400
    assert refused.json == {"error": "File is empty"}
    assert stored_files(app) == ([], [])


@pytest.mark.parametrize("filename", ["x.html", "x.svg", "x.gif", "x", "x.png.exe"])
def test_the_extension_follows_the_content_not_the_name(client, api, filename):
    person = api.person()
    uploaded = upload(client, person, image_bytes("PNG"), filename)
    assert uploaded.status_code == 200
    assert uploaded.json["path"].endswith(".png")
    assert uploaded.json["name"] == filename
    served = client.get(f"/files/{uploaded.json['path']}")
    assert served.mimetype == "image/png"


@pytest.mark.parametrize(
    "form",
    [
        pytest.param({}, id="empty-form"),
        pytest.param({"avatar": (io.BytesIO(image_bytes("PNG")), "a.png")}, id="other-field"),
        pytest.param({"file": "not a file"}, id="text-field"),
    ],
)
def test_a_missing_file_field_is_refused(client, api, form):
    person = api.person()
    refused = client.post("/files", data=form, headers=person.headers)
    assert refused.status_code == 400
    assert refused.json == {"error": "File not provided (multipart field 'file')"}


def test_a_json_body_instead_of_a_file_is_refused(client, api):
    person = api.person()
    refused = client.post("/files", json={"file": "a.png"}, headers=person.headers)
    assert refused.status_code == 400
    assert refused.json == {"error": "File not provided (multipart field 'file')"}


def test_an_image_over_the_size_limit_is_refused(app, client, api):
    person = api.person()
    data = noise_png(1.5 * 1024)
    assert 1.3 * 1024 * 1024 < len(data) < 1.9 * 1024 * 1024
    refused = upload(client, person, data, "big.png")
    assert refused.status_code == 413
    assert refused.json == {"error": "File too large (limit 1 MB)"}
    assert stored_files(app) == ([], [])


def test_a_body_far_over_the_size_limit_is_refused_as_json(app, client, api):
    person = api.person()
    refused = upload(client, person, noise_png(3 * 1024), "huge.png")
    assert refused.status_code == 413
    assert refused.json == {"error": "Payload too large"}
    assert stored_files(app) == ([], [])


def test_an_image_just_under_the_limit_is_stored(client, api):
    person = api.person()
    data = noise_png(0.9 * 1024)
    assert len(data) < 1024 * 1024
    assert upload(client, person, data, "fits.png").status_code == 200


@pytest.mark.parametrize("path", ["unknown", "unknown.png", "0" * 32 + ".png"])
def test_an_unknown_file_is_a_json_404(client, path):
    missing = client.get(f"/files/{path}")
    assert missing.status_code == 404
    assert missing.json == {"error": "Not found"}


@pytest.mark.parametrize(
    "url",
    [
        "/files/../wsgi.py",
        "/files/../secret.txt",
        "/files/..%2Fsecret.txt",
        "/files/..%2fsecret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/%2E%2E%2Fsecret.txt",
        "/files/sub/../../secret.txt",
        "/files/..\\secret.txt",
        "/files/..%5Csecret.txt",
        "/files/....//secret.txt",
    ],
)
def test_a_path_outside_the_upload_folder_is_never_served(app, client, url):
    """`secret.txt` sits next to the upload folder; no spelling of `..` may reach it."""
    uploads = Path(app.config["UPLOAD_FOLDER"])
    uploads.mkdir(parents=True, exist_ok=True)
    (uploads.parent / "secret.txt").write_text("do not serve me")
    (uploads.parent / "wsgi.py").write_text("do not serve me either")
    answer = client.get(url, follow_redirects=True)
    assert answer.status_code == 404
    assert answer.json == {"error": "Not found"}


def test_an_absolute_path_is_never_served(app, client):
    secret = Path(app.config["UPLOAD_FOLDER"]).parent / "secret.txt"
    secret.write_text("do not serve me")
    answer = client.get(f"/files/{secret}", follow_redirects=True)
    assert answer.status_code == 404
    assert answer.json == {"error": "Not found"}
