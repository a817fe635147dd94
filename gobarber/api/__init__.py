"""The REST contract of the GoBarber clients: one module per resource."""

from flask import jsonify
from werkzeug.routing import BaseConverter

from gobarber.api import (
    appointments,
    files,
    notifications,
    passwords,
    providers,
    schedule,
    sessions,
    users,
)
from gobarber.api.contract import openapi_document
from gobarber.api.fields import MAX_ID

BLUEPRINTS = (
    users,
    sessions,
    passwords,
    files,
    providers,
    appointments,
    schedule,
    notifications,
)


class IdConverter(BaseConverter):
    """A row id in a path. Anything that is not one becomes 0, which no row has, so the
    resource answers with its own not-found text instead of a bare routing 404."""

    regex = r"[^/]+"

    def to_python(self, value):
        # ASCII only: `²` passes isdigit() yet int() refuses it, and `١` would read as 1.
        return int(value) if value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID else 0

    def to_url(self, value):
        return str(value)


def register(app):
    """Register the id converter, every resource's blueprint and `/openapi.json`."""
    # No redirects for `//` or a trailing slash: Flask sends those as HTML, before any
    # of the app's JSON error handlers could answer.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.url_map.converters["id"] = IdConverter
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)

    @app.get("/openapi.json")
    def openapi():
        return jsonify(openapi_document(app))
