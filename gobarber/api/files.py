"""Files: `POST /files` uploads an avatar image; `GET /files/<path>` serves it."""

from flask import Blueprint, request, send_from_directory

from gobarber.api.contract import JSON_ERROR, current_user, documented, endpoint, file_content
from gobarber.api.schemas import StoredFile
from gobarber.errors import Invalid
from gobarber.services.files import store_upload, upload_folder

bp = Blueprint("files", __name__)

ONE_YEAR = 365 * 24 * 3600


@bp.post("/files")
@endpoint(
    upload="file",
    summary="Upload an image (JPEG, PNG, GIF or WebP) to use as an avatar",
    responses={
        200: (StoredFile, "The stored file"),
        400: "Not an image, an image too large, no file, or the upload quota exceeded",
        413: "File too large",
    },
)
def upload():
    given = request.files.get("file")
    if given is None:
        raise Invalid("File not provided (multipart field 'file')")
    file = store_upload(owner=current_user(), stream=given.stream, filename=given.filename)
    return StoredFile.of(file)


@bp.get("/files/<path:path>")
@documented(
    summary="An uploaded image, at the `path` its upload answered with",
    responses={
        200: (
            "The image, cached for a year: a stored file never changes",
            file_content("image/jpeg", "image/png", "image/gif", "image/webp"),
        ),
        304: "Not modified since the copy the client has (If-None-Match, If-Modified-Since)",
        404: ("No such file", JSON_ERROR),
    },
)
def serve(path):
    response = send_from_directory(upload_folder(), path, max_age=ONE_YEAR)
    # A stored file never changes: each upload gets a new random name.
    response.cache_control.public = True
    response.cache_control.immutable = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
