"""Every route the app answers is in `/openapi.json`, so a new one cannot be forgotten.

A route is a rule of `app.url_map` and one of its methods; HEAD and OPTIONS are Flask's
own, and `static` serves files, not the service.
"""

import re

from gobarber.api.contract import documented

CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def routes(app):
    """Return (method, OpenAPI path) for every route of `app` but Flask's static files."""
    return {
        (method.lower(), CONVERTER.sub(r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.rpartition(".")[2] != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def operations(client):
    """Return (method, path) for every operation of the served document."""
    paths = client.get("/openapi.json").json["paths"]
    return {(method, path) for path, item in paths.items() for method in item}


def test_every_route_is_documented(app, client):
    assert routes(app) - operations(client) == set()


def test_the_document_lists_nothing_but_routes(app, client):
    assert operations(client) - routes(app) == set()


def test_a_route_without_a_declaration_is_caught(app, client):
    @app.get("/forgotten")
    def forgotten():
        return "nobody declared me"

    assert routes(app) - operations(client) == {("get", "/forgotten")}


def test_a_declaration_covers_only_its_method(app, client):
    @app.route("/half/<int:day>", methods=["GET", "POST"])
    @documented(method="GET", summary="Half of it", responses={200: "It"})
    def half(day):
        return "declared for GET only"

    assert routes(app) - operations(client) == {("post", "/half/{day}")}
