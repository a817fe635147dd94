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
from gobarber.api.contract import documented, json_content, openapi_document
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

# The document's own shape, as far as /openapi.json's answer is concerned.
DOCUMENT = {
    "type": "object",
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
        "info": {"type": "object"},
        "servers": {"type": "array", "items": {"type": "object"}},
        "tags": {"type": "array", "items": {"type": "object"}},
        "paths": {"type": "object"},
        "components": {"type": "object"},
    },
    "required": ["openapi", "info", "servers", "tags", "paths", "components"],
    "additionalProperties": False,
}


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
    @documented(
        tag="service",
        summary="This document: every route of the service, in OpenAPI 3.1",
        responses={200: ("The document", json_content(DOCUMENT))},
    )
    def openapi():
        return jsonify(openapi_document(app))
