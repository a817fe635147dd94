"""Uploads on the open internet: owned by their uploader, re-encoded without metadata,
shrunk, refused when they declare too many pixels or take their owner past the quota,
and served with headers that stop browsers sniffing and clients asking again."""

import io
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from gobarber.extensions import db
from gobarber.models import File
from gobarber.services.files import delete_stored, unlink_upload
from tests.uploads import noise_png, stored_files, upload

GPS = ExifTags.IFD.GPSInfo


def encoded(image, image_format, **params):
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def exif_with_gps(orientation=1):
    """EXIF as a phone writes it: the camera, the orientation and where the photo was shot."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(GPS)
    gps[ExifTags.GPS.GPSLatitudeRef] = "S"
    gps[ExifTags.GPS.GPSLatitude] = (23.0, 33.0, 1.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (46.0, 38.0, 2.0)
    return exif


def served(client, person, data, filename):
    """Upload `data` and return the bytes `GET /files/<path>` then serves."""
    uploaded = upload(client, person, data, filename)
    assert uploaded.status_code == 200, uploaded.json
    answer = client.get(f"/files/{uploaded.json['path']}")
    assert answer.status_code == 200
    return answer.data


def test_the_uploader_owns_the_file_and_its_size_is_recorded(app, client, api):
    person = api.person()
    data = encoded(Image.new("RGB", (32, 32), "olive"), "PNG")
    uploaded = upload(client, person, data, "me.png")
    assert uploaded.status_code == 200, uploaded.json
    path = uploaded.json["path"]
    with app.app_context():
        row = db.session.scalars(db.select(File).where(File.path == path)).one()
        assert row.owner_id == person.id
        on_disk = (Path(app.config["UPLOAD_FOLDER"]) / path).read_bytes()
        assert row.size == len(on_disk) > 0
    assert client.get(f"/files/{path}").data == on_disk


@pytest.mark.parametrize(
    ("image_format", "filename", "params"),
    [
        ("JPEG", "photo.jpg", {"comment": b"shot at home"}),
        ("PNG", "photo.png", {}),
        ("WEBP", "photo.webp", {}),
    ],
)
def test_exif_and_gps_are_gone_from_the_served_image(client, api, image_format, filename, params):
    person = api.person()
    data = encoded(Image.new("RGB", (64, 48), "navy"), image_format, exif=exif_with_gps(), **params)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(GPS)  # the test's own premise
    stored = served(client, person, data, filename)
    image = Image.open(io.BytesIO(stored))
    assert image.format == image_format
    assert image.size == (64, 48)
    assert dict(image.getexif()) == {}
    assert not {"exif", "comment", "icc_profile", "XML:com.adobe.xmp"} & set(image.info)
    assert b"PhoneMaker" not in stored
    assert b"Exif" not in stored


def test_png_text_chunks_are_gone_from_the_served_image(client, api):
    from PIL.PngImagePlugin import PngInfo

    text = PngInfo()
    text.add_text("Author", "Ann at 12 Home Street")
    data = encoded(Image.new("RGB", (8, 8), "gold"), "PNG", pnginfo=text)
    stored = served(client, api.person(), data, "a.png")
    assert Image.open(io.BytesIO(stored)).info.get("Author") is None
    assert b"Home Street" not in stored


@pytest.mark.parametrize(
    ("size", "expected"),
    [((4000, 3000), (1024, 768)), ((1500, 3000), (512, 1024)), ((1024, 100), (1024, 100))],
)
def test_a_large_image_is_served_at_most_1024_px_on_its_long_side(client, api, size, expected):
    data = encoded(Image.new("RGB", size, "teal"), "JPEG")
    stored = served(client, api.person(), data, "big.jpg")
    assert Image.open(io.BytesIO(stored)).size == expected


def test_the_exif_orientation_is_applied(client, api):
    """Orientation 6: the camera was turned; shown upright, the left side is on top."""
    picture = Image.new("RGB", (80, 40), "blue")
    picture.paste((255, 0, 0), (0, 0, 40, 40))  # left half red
    data = encoded(picture, "JPEG", exif=exif_with_gps(orientation=6))
    image = Image.open(io.BytesIO(served(client, api.person(), data, "turned.jpg")))
    assert image.size == (40, 80)
    red, _, blue = image.getpixel((20, 10))
    assert red > 200 and blue < 60
    red, _, blue = image.getpixel((20, 70))
    assert red < 60 and blue > 200
    assert ExifTags.Base.Orientation not in image.getexif()


def test_an_animation_keeps_its_first_frame_only(client, api):
    frames = [Image.new("RGB", (20, 20), color) for color in ("red", "lime", "blue")]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3  # the test's own premise
    image = Image.open(io.BytesIO(served(client, api.person(), data, "anim.gif")))
    assert image.format == "GIF"
    assert getattr(image, "n_frames", 1) == 1
    assert image.convert("RGB").getpixel((10, 10)) == (255, 0, 0)


def test_a_phones_multi_picture_jpeg_is_taken_as_a_jpeg(client, api):
    pictures = [Image.new("RGB", (40, 30), color) for color in ("red", "blue")]
    data = encoded(pictures[0], "MPO", save_all=True, append_images=pictures[1:])
    assert Image.open(io.BytesIO(data)).format == "MPO"  # the test's own premise
    person = api.person()
    uploaded = upload(client, person, data, "IMG_0001.JPG")
    assert uploaded.status_code == 200, uploaded.json
    assert uploaded.json["path"].endswith(".jpg")
    image = Image.open(io.BytesIO(client.get(f"/files/{uploaded.json['path']}").data))
    assert (image.format, image.size) == ("JPEG", (40, 30))
    assert image.getpixel((20, 15))[0] > 200  # the first picture, the red one


@pytest.mark.parametrize(
    ("mode", "image_format", "filename"),
    [
        ("CMYK", "JPEG", "print.jpg"),
        ("L", "JPEG", "grey.jpg"),
        ("P", "PNG", "palette.png"),
        ("LA", "PNG", "grey-alpha.png"),
        ("RGBA", "PNG", "alpha.png"),
        ("1", "PNG", "bits.png"),
        ("I;16", "PNG", "deep.png"),
        ("RGBA", "WEBP", "alpha.webp"),
        ("P", "GIF", "palette.gif"),
    ],
)
def test_images_of_every_mode_are_re_encoded(client, api, mode, image_format, filename):
    data = encoded(Image.new(mode, (1200, 30)), image_format)
    image = Image.open(io.BytesIO(served(client, api.person(), data, filename)))
    assert image.format == image_format
    assert image.size == (1024, 26)
    # Browsers show CMYK JPEGs badly or not at all.
    assert image.mode != "CMYK"


def test_a_palette_png_keeps_its_transparency(client, api):
    image = Image.new("P", (10, 10), 1)
    image.putpalette([0, 0, 0, 255, 0, 0])
    data = encoded(image, "PNG", transparency=1)
    stored = Image.open(io.BytesIO(served(client, api.person(), data, "clear.png")))
    assert stored.convert("RGBA").getpixel((5, 5))[3] == 0


# Pillow warns of a decompression bomb on opening; the upload is refused right after.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(app, client, api):
    """12000 x 12000 one-bit pixels: 144 megapixels in a PNG of a few kilobytes."""
    data = encoded(Image.new("1", (12_000, 12_000)), "PNG")
    assert len(data) < 64 * 1024  # the test's own premise
    refused = upload(client, api.person(), data, "canvas.png")
    assert refused.status_code == 400
    assert refused.json == {"error": "Image too large"}
    assert stored_files(app) == ([], [])


class TestQuota:
    @pytest.fixture
    def config_overrides(self):
        return {"UPLOAD_QUOTA_MB": 1}

    def test_uploads_past_the_owners_quota_are_refused_and_not_stored(self, app, client, api):
        person = api.person()
        first = upload(client, person, noise_png(600), "first.png")
        assert first.status_code == 200, first.json
        refused = upload(client, person, noise_png(600), "second.png")
        assert refused.status_code == 400
        assert refused.json == {"error": "Upload quota exceeded"}
        assert stored_files(app) == ([first.json["path"]], [first.json["path"]])
        # What is left of the quota still takes a small image.
        small = encoded(Image.new("RGB", (16, 16), "plum"), "PNG")
        assert upload(client, person, small, "small.png").status_code == 200

    def test_the_quota_is_each_users_own(self, client, api):
        assert upload(client, api.person(), noise_png(600), "a.png").status_code == 200
        assert upload(client, api.person(), noise_png(600), "b.png").status_code == 200


def test_served_files_are_not_sniffed_and_cached_for_a_year(client, api):
    person = api.person()
    uploaded = upload(client, person, encoded(Image.new("RGB", (4, 4)), "PNG"), "a.png")
    answer = client.get(f"/files/{uploaded.json['path']}")
    assert answer.status_code == 200
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    directives = {part.strip() for part in answer.headers["Cache-Control"].split(",")}
    assert directives == {"public", "max-age=31536000", "immutable"}


def test_a_stored_file_is_deleted_and_unlinked(app, client, api):
    uploaded = upload(client, api.person(), encoded(Image.new("RGB", (4, 4)), "PNG"), "a.png")
    with app.app_context():
        row = db.session.get(File, uploaded.json["id"])
        path = delete_stored(row)
        db.session.commit()
        assert path == uploaded.json["path"]
        assert stored_files(app) == ([path], [])
        unlink_upload(path)
        assert stored_files(app) == ([], [])
        unlink_upload(path)  # already gone: nothing to do


@pytest.mark.parametrize("path", ["", ".", "..", "../secret.txt", "sub/a.png", "/etc/passwd"])
def test_unlink_refuses_anything_but_a_name_in_the_upload_folder(app, path):
    secret = Path(app.config["UPLOAD_FOLDER"]).parent / "secret.txt"
    secret.write_text("keep me")
    with app.app_context(), pytest.raises(ValueError):
        unlink_upload(path)
    assert secret.read_text() == "keep me"
