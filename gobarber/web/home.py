"""What this service is and where to read about it: `GET /` and `/docs`.

`GET /` answers an API client with JSON (the name, the version and links) and a browser
with a short page of the same links. `/docs` is the API reference, browsable: Swagger UI
reading `/openapi.json`, from the files the `flask-swagger-ui` package installs, served
here under their release so that a browser keeps them until the package is upgraded.
Nothing on either page comes from another host.
"""

from importlib.metadata import version
from importlib.resources import files

from flask import (
    Blueprint,
    jsonify,
    make_response,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from werkzeug.exceptions import NotFound

from gobarber.api.contract import HTML_PAGE, JSON_ERROR, documented, file_content, json_content

bp = Blueprint("home", __name__)

TAG = "service"
VERSION = version("gobarber")
SWAGGER_UI_RELEASE = version("flask-swagger-ui")  # the release of Swagger UI it ships
SWAGGER_UI_FILES = files("flask_swagger_ui") / "dist"
# What /docs loads; nothing else of the package (its OAuth2 redirect page) is served.
SWAGGER_UI_ASSETS = frozenset(
    {"swagger-ui.css", "index.css", "swagger-ui-bundle.js", "favicon-32x32.png"}
)
ONE_YEAR = 365 * 24 * 3600

LINKS = {
    "type": "object",
    "properties": {
        name: {"type": "string", "description": description}
        for name, description in (
            ("docs", "The API reference, browsable"),
            ("openapi", "The OpenAPI document"),
            ("health", "The web process's readiness"),
            ("queue", "The mail queue's page, for operators"),
            ("pages", "The shop's own pages: book, cancel, a barber's day"),
        )
    },
    "required": ["docs", "openapi", "health", "queue", "pages"],
    "additionalProperties": False,
}
ABOUT = {
    "type": "object",
    "properties": {
        "name": {"const": "GoBarber"},
        "version": {"type": "string", "description": "The installed gobarber package's"},
        "links": LINKS,
    },
    "required": ["name", "version", "links"],
    "additionalProperties": False,
}


def prefers_html():
    """Tell whether the client would rather have HTML than JSON: a browser, not curl."""
    accepted = request.accept_mimetypes
    return accepted.quality("text/html") > accepted.quality("application/json")


@bp.get("/")
@documented(
    tag=TAG,
    summary="What this service is, with links to its reference, health and queue page",
    responses={
        200: (
            "JSON, unless the client prefers HTML (a browser): then a page of the same links",
            {**json_content(ABOUT), **HTML_PAGE},
        ),
    },
)
def index():
    about = {
        "name": "GoBarber",
        "version": VERSION,
        "links": {
            "docs": url_for("home.docs"),
            "openapi": url_for("openapi"),
            "health": url_for("probes.health"),
            "queue": url_for("admin.queue_page"),
            "pages": url_for("pages.home"),
        },
    }
    if prefers_html():
        response = make_response(render_template("home.html", **about))
    else:
        response = jsonify(about)
    response.vary.add("Accept")
    return response


@bp.get("/docs")
@documented(
    tag=TAG,
    summary="This reference, browsable (Swagger UI)",
    responses={200: ("The page; its script reads /openapi.json", HTML_PAGE)},
)
def docs():
    def asset(name):
        return url_for("home.swagger_ui", release=SWAGGER_UI_RELEASE, name=name)

    return render_template("docs.html", asset=asset, openapi=url_for("openapi"))


@bp.get("/docs/swagger-ui/<release>/<name>")
@documented(
    tag=TAG,
    summary="A file of Swagger UI, which /docs loads",
    responses={
        200: (
            "The file, cached for a year: its address changes with the release",
            file_content("text/css", "text/javascript", "image/png"),
        ),
        304: "Not modified since the copy the client has",
        404: ("Not a file /docs loads, or not the release installed", JSON_ERROR),
    },
)
def swagger_ui(release, name):
    if release != SWAGGER_UI_RELEASE or name not in SWAGGER_UI_ASSETS:
        raise NotFound()
    response = send_from_directory(SWAGGER_UI_FILES, name, max_age=ONE_YEAR)
    response.cache_control.public = True
    response.cache_control.immutable = True
    return response
