"""Files: `POST /files` uploads an avatar image; `GET /files/<path>` serves it."""

from flask import Blueprint, request, send_from_directory

from gobarber.api.contract import endpoint
from gobarber.api.schemas import StoredFile
from gobarber.errors import Invalid
from gobarber.services.files import store_upload, upload_folder

bp = Blueprint("files", __name__)


@bp.post("/files")
@endpoint(
    upload="file",
    summary="Upload an image (JPEG, PNG, GIF or WebP) to use as an avatar",
    responses={
        200: (StoredFile, "The stored file"),
        400: "Not an image, or no file",
        413: "File too large",
    },
)
def upload():
    given = request.files.get("file")
    if given is None:
        raise Invalid("File not provided (multipart field 'file')")
    file = store_upload(stream=given.stream, filename=given.filename)
    return StoredFile.of(file)


@bp.get("/files/<path:path>")
def serve(path):
    return send_from_directory(upload_folder(), path, max_age=86400)
