"""Avatars are one's own uploads: another user's file is refused as if unknown, and the
avatar one replaces or clears is deleted, its row and its file on disk."""

import io
from pathlib import Path

import pytest
from PIL import Image

from gobarber.extensions import db
from gobarber.models import File, User

NOT_FOUND = {"error": "Avatar file not found"}


def upload(client, person, color="navy"):
    image = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(image, "PNG")
    image.seek(0)
    uploaded = client.post("/files", data={"file": (image, "me.png")}, headers=person.headers)
    assert uploaded.status_code == 200, uploaded.json
    return uploaded.json


def set_avatar(client, person, avatar_id):
    return client.put("/users", json={"avatar_id": avatar_id}, headers=person.headers)


def avatar_of(client, person):
    signed = client.post("/sessions", json={"email": person.email, "password": person.password})
    return signed.json["user"]["avatar"]


def stored(app, file):
    """Where a file stands: (row exists, on disk, served)."""
    with app.app_context():
        row = db.session.get(File, file["id"]) is not None
    on_disk = (Path(app.config["UPLOAD_FOLDER"]) / file["path"]).exists()
    served = app.test_client().get(f"/files/{file['path']}").status_code
    return row, on_disk, served


def test_another_users_file_is_refused_as_an_unknown_one(client, api):
    owner, other = api.person(), api.person()
    file = upload(client, owner)
    taken = set_avatar(client, other, file["id"])
    unknown = set_avatar(client, other, file["id"] + 1000)
    assert (taken.status_code, taken.json) == (400, NOT_FOUND)
    assert (unknown.status_code, unknown.json) == (taken.status_code, taken.json)
    assert avatar_of(client, other) is None

    mine = set_avatar(client, owner, file["id"])
    assert mine.status_code == 200
    assert mine.json["avatar"] == {"url": file["url"], "id": file["id"], "path": file["path"]}


def test_replacing_the_avatar_deletes_the_old_file(app, client, api):
    person = api.person()
    first, second = upload(client, person, "navy"), upload(client, person, "teal")
    assert set_avatar(client, person, first["id"]).status_code == 200
    # Sending the current avatar again, as the web client's profile form does, keeps it.
    assert set_avatar(client, person, first["id"]).status_code == 200
    assert stored(app, first) == (True, True, 200)

    replaced = set_avatar(client, person, second["id"])
    assert replaced.status_code == 200
    assert replaced.json["avatar"]["id"] == second["id"]
    assert stored(app, first) == (False, False, 404)
    assert stored(app, second) == (True, True, 200)
    assert set_avatar(client, person, first["id"]).json == NOT_FOUND


def test_clearing_the_avatar_deletes_its_file(app, client, api):
    person = api.person()
    file = upload(client, person)
    set_avatar(client, person, file["id"])
    cleared = set_avatar(client, person, None)
    assert cleared.status_code == 200
    assert cleared.json["avatar"] is None
    assert stored(app, file) == (False, False, 404)


def test_a_refused_change_deletes_nothing(app, client, api):
    person, other = api.person(), api.person()
    mine, theirs = upload(client, person), upload(client, other)
    set_avatar(client, person, mine["id"])
    assert set_avatar(client, person, theirs["id"]).json == NOT_FOUND
    assert stored(app, mine) == (True, True, 200)
    assert avatar_of(client, person)["id"] == mine["id"]


@pytest.mark.parametrize("uploader", ["nobody", "another-user"])
def test_an_avatar_one_does_not_own_is_kept_but_cannot_be_taken_back(app, client, api, uploader):
    """An avatar from before files had owners (no owner, or another user's file, which
    anyone could then take) still works, and is not deleted when replaced."""
    person, other = api.person(), api.person()
    old = upload(client, other, "olive")
    with app.app_context():
        if uploader == "nobody":
            db.session.get(File, old["id"]).owner_id = None
        db.session.get(User, person.id).avatar_id = old["id"]
        db.session.commit()

    kept = client.put(
        "/users", json={"name": "Kept", "avatar_id": old["id"]}, headers=person.headers
    )
    assert kept.status_code == 200
    assert kept.json["avatar"]["id"] == old["id"]

    new = upload(client, person, "navy")
    assert set_avatar(client, person, new["id"]).status_code == 200
    assert stored(app, old) == (True, True, 200)
    assert set_avatar(client, person, old["id"]).json == NOT_FOUND
