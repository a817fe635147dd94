"""Avatar uploads: images only, checked by their content, stored under a random name."""

import secrets
from pathlib import Path

from flask import current_app
from PIL import Image, UnidentifiedImageError

from gobarber.errors import Invalid, TooLarge
from gobarber.extensions import db
from gobarber.models import File

# Pillow's format name -> the extensions such a file may keep; the first is the default.
IMAGE_EXTENSIONS = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "GIF": (".gif",),
    "WEBP": (".webp",),
}


def upload_folder() -> Path:
    """Return the folder uploads are stored in, creating it if needed."""
    folder = Path(current_app.config["UPLOAD_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _image_format(stream):
    try:
        with Image.open(stream) as image:
            image_format = image.format
            image.verify()
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        IndexError,  # Pillow's PNG verify() of a header with no image data behind it
        Image.DecompressionBombError,
    ):
        raise Invalid("File must be an image (JPEG, PNG, GIF or WebP)") from None
    if image_format not in IMAGE_EXTENSIONS:
        raise Invalid("File must be an image (JPEG, PNG, GIF or WebP)")
    return image_format


def store_upload(*, stream, filename):
    """Check that the upload is an image within the size limit, store it, record it."""
    limit = current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"File too large (limit {current_app.config['MAX_UPLOAD_MB']} MB)")
    if not data:
        raise Invalid("File is empty")
    stream.seek(0)
    allowed = IMAGE_EXTENSIONS[_image_format(stream)]
    # Keep the client's extension when it fits the content; never serve a PNG as .html.
    extension = Path(filename or "").suffix.lower()
    if extension not in allowed:
        extension = allowed[0]
    path = secrets.token_hex(16) + extension
    (upload_folder() / path).write_bytes(data)
    # The client's name is kept for display only; control characters (NUL among them,
    # which PostgreSQL text refuses) are dropped.
    shown = "".join(ch for ch in (filename or "") if ch.isprintable())[:255] or path
    record = File(name=shown, path=path)
    db.session.add(record)
    db.session.commit()
    return record
