"""Avatar uploads: images only, checked by their content, re-encoded without their
metadata, stored under a random name and counted against their owner's quota."""

import io
import secrets
from pathlib import Path

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import func, select

from gobarber.errors import Invalid, TooLarge
from gobarber.extensions import db
from gobarber.models import File, User

# Pillow's format name -> the extensions such a file may keep; the first is the default.
IMAGE_EXTENSIONS = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "GIF": (".gif",),
    "WEBP": (".webp",),
}
NOT_AN_IMAGE = "File must be an image (JPEG, PNG, GIF or WebP)"
# Refused from the header alone, before a pixel is decoded: 40 million pixels take
# 160 MB of memory as RGBA, whatever few bytes the file itself takes.
MAX_PIXELS = 40_000_000
# An avatar is shown small; the stored image's long side is at most this.
LONG_SIDE = 1024


def upload_folder() -> Path:
    """Return the folder uploads are stored in, creating it if needed."""
    folder = Path(current_app.config["UPLOAD_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def delete_stored(file):
    """Delete the File row in the current session (no commit); return its stored path."""
    db.session.delete(file)
    return file.path


def unlink_upload(path):
    """Remove a stored upload from the upload folder; one already gone is fine."""
    # Only a plain name in the folder: never `..`, a sub-folder or an absolute path.
    if not path or path in (".", "..") or Path(path).name != path or "\\" in path:
        raise ValueError(f"Not an upload name: {path!r}")
    (upload_folder() / path).unlink(missing_ok=True)


def _checked_image(data):
    """Open `data` as an allowed image, refusing a forged or oversized one before decoding."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            width, height = image.size
            image.verify()
    except Image.DecompressionBombError:  # Pillow's own, far higher, limit
        raise Invalid("Image too large") from None
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        IndexError,  # Pillow's PNG verify() of a header with no image data behind it
    ):
        raise Invalid(NOT_AN_IMAGE) from None
    # Phones write multi-picture JPEGs (MPO): a JPEG whose first picture is the photo.
    if image_format == "MPO":
        image_format = "JPEG"
    if image_format not in IMAGE_EXTENSIONS:
        raise Invalid(NOT_AN_IMAGE)
    if width * height > MAX_PIXELS:
        raise Invalid("Image too large")
    return image_format


def _reencoded(data, image_format):
    """Decode the first frame upright, shrink it, and encode it again without metadata."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft(None, (LONG_SIDE, LONG_SIDE))  # JPEG: decode at a reduced scale
            image = ImageOps.exif_transpose(image)  # a copy of the first frame, upright
            image.thumbnail((LONG_SIDE, LONG_SIDE))
    except (OSError, ValueError, SyntaxError, IndexError, Image.DecompressionBombError):
        raise Invalid(NOT_AN_IMAGE) from None
    if image_format == "JPEG" and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # CMYK above all, which browsers show badly if at all
    # EXIF (GPS among it), ICC profiles, text chunks and comments all travel in `info`;
    # only transparency is part of the picture.
    image.info = {k: v for k, v in image.info.items() if k == "transparency"}
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def _check_quota(owner, size):
    """Refuse an upload that would take `owner` past their quota; lock them until commit."""
    # The lock on the owner's row makes two uploads at once count each other.
    # NO KEY UPDATE, as a booking's lock: appointments referring to the user stay free.
    lock = select(User.id).where(User.id == owner.id).with_for_update(key_share=True)
    db.session.execute(lock)
    used = db.session.scalar(
        select(func.coalesce(func.sum(File.size), 0)).where(File.owner_id == owner.id)
    )
    if used + size > current_app.config["UPLOAD_QUOTA_MB"] * 1024 * 1024:
        db.session.rollback()
        raise Invalid("Upload quota exceeded")


def store_upload(*, owner, stream, filename):
    """Check that the upload is an image within the limits, re-encode, store and record it."""
    limit = current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"File too large (limit {current_app.config['MAX_UPLOAD_MB']} MB)")
    if not data:
        raise Invalid("File is empty")
    image_format = _checked_image(data)
    stored = _reencoded(data, image_format)
    allowed = IMAGE_EXTENSIONS[image_format]
    # Keep the client's extension when it fits the content; never serve a PNG as .html.
    extension = Path(filename or "").suffix.lower()
    if extension not in allowed:
        extension = allowed[0]
    path = secrets.token_hex(16) + extension
    # The client's name is kept for display only; control characters (NUL among them,
    # which PostgreSQL text refuses) are dropped.
    shown = "".join(ch for ch in (filename or "") if ch.isprintable())[:255] or path
    _check_quota(owner, len(stored))
    (upload_folder() / path).write_bytes(stored)
    record = File(name=shown, path=path, owner_id=owner.id, size=len(stored))
    db.session.add(record)
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        unlink_upload(path)
        raise
    return record
