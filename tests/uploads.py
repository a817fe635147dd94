"""Uploading through `POST /files`, and what the upload folder and the `files` rows hold."""

import io
import os
from pathlib import Path

from PIL import Image

from gobarber.extensions import db
from gobarber.models import File


def upload(client, person, data, filename):
    """POST `data` as the file `filename`, signed in as `person`."""
    return client.post(
        "/files", data={"file": (io.BytesIO(data), filename)}, headers=person.headers
    )


def stored_files(app):
    """The names in the upload folder and the paths of the `files` rows, sorted."""
    folder = Path(app.config["UPLOAD_FOLDER"])
    on_disk = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    with app.app_context():
        rows = sorted(db.session.scalars(db.select(File.path)).all())
    return on_disk, rows


def noise_png(kilobytes):
    """A PNG of random pixels, which does not compress: about `kilobytes` on disk."""
    side = int((kilobytes * 1024 / 3) ** 0.5)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()
