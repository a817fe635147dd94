"""Request validation, response serialisation and the OpenAPI document, from one set of models.

A view declares what it takes and what it answers with `@endpoint(...)`: the decorator
validates the request against the input models, serialises the model the view returns,
and records both, and `/openapi.json` is built from that record, so the document cannot
drift from what the code accepts or sends.
"""

import re
from functools import wraps

from flask import g, request
from pydantic import BaseModel, TypeAdapter, ValidationError

from gobarber.errors import Invalid, Unauthorized
from gobarber.services.users import user_from_token

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}


def current_user():
    """Return the signed-in user of this request."""
    return g.user


def authenticate():
    """Find the user of the bearer token; only the header's second word is read."""
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("Token not provided")
    words = header.split()
    if len(words) < 2:
        raise Unauthorized("Token invalid")
    g.user = user_from_token(token=words[1])


def _has_nul(value):
    """Tell whether a decoded JSON value holds a NUL character anywhere."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _validate(model, data, invalid):
    # PostgreSQL text cannot hold NUL; refuse it here rather than fail in the database.
    if _has_nul(data):
        raise Invalid(invalid)
    try:
        return model.model_validate(data)
    except ValidationError:
        raise Invalid(invalid) from None


def parse_body(model, invalid="Validation fails"):
    """Validate the JSON body against `model`; malformed or not an object is invalid."""
    try:
        data = request.get_json(force=True, silent=True)
    except RecursionError:
        # `silent` covers malformed JSON only; a deeply nested one overflows the decoder.
        data = None
    if not isinstance(data, dict):
        raise Invalid(invalid)
    return _validate(model, data, invalid)


def parse_query(model, invalid="Validation fails"):
    """Validate the query string against `model` (first value of each key)."""
    return _validate(model, request.args.to_dict(), invalid)


def _success(responses):
    """Return the one 2xx status of `responses` and the type its view returns."""
    successes = [(status, answer) for status, answer in responses.items() if status < 400]
    if len(successes) != 1 or not isinstance(successes[0][1], tuple):
        raise TypeError("declare exactly one success as `status: (ResponseModel, description)`")
    status, (shape, _) = successes[0]
    return status, shape


def endpoint(
    *,
    summary,
    responses,
    auth=True,
    provider_only=False,
    body=None,
    query=None,
    upload=None,
    invalid="Validation fails",
):
    """Declare a view's inputs and answers: authenticate, validate, serialise, record.

    `responses` maps each status to its description; the success maps to
    `(model, description)`, where the model (or `list[model]`) is what the view returns.
    Checks run in the original backend's order: the token, then the provider flag, then
    the input.
    """
    status, shape = _success(responses)
    # Built once per view: a TypeAdapter compiles its serializer.
    dump = TypeAdapter(shape).dump_python

    def decorate(view):
        @wraps(view)
        def handle(*args, **kwargs):
            if auth:
                authenticate()
            if provider_only and not g.user.provider:
                raise Unauthorized("User is not a provider")
            if body is not None:
                kwargs["body"] = parse_body(body, invalid)
            if query is not None:
                kwargs["query"] = parse_query(query, invalid)
            # warnings="error": a view that returns anything but its model fails loudly
            # instead of sending keys the document does not declare.
            return dump(view(*args, **kwargs), mode="json", by_alias=True, warnings="error"), status

        handle.openapi = {
            "summary": summary,
            "responses": responses,
            "auth": auth,
            "body": body,
            "query": query,
            "upload": upload,
        }
        return handle

    return decorate


# ---- the document -------------------------------------------------------------------

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
_PATH_TYPES = {
    "id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "path": {"type": "string"},
    None: {"type": "string"},
}


_REF = "#/components/schemas/{model}"


def _schema_ref(shape, components, mode="validation"):
    """Return the schema of a model or `list[model]`, its models moved into components."""
    schema = TypeAdapter(shape).json_schema(mode=mode, ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    if isinstance(shape, type) and issubclass(shape, BaseModel):
        components[shape.__name__] = schema
        return {"$ref": _REF.format(model=shape.__name__)}
    return schema


def _query_parameters(model):
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _operation(spec, path_params, components):
    operation = {"summary": spec["summary"], "responses": {}}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_TYPES.get(kind, {})}
        for kind, name in path_params
    ]
    if spec["query"] is not None:
        parameters += _query_parameters(spec["query"])
    if parameters:
        operation["parameters"] = parameters
    if spec["body"] is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema_ref(spec["body"], components)}},
        }
    if spec["upload"]:
        field = spec["upload"]
        operation["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {field: {"type": "string", "format": "binary"}},
                        "required": [field],
                    }
                }
            },
        }
    if spec["auth"]:
        operation["security"] = [{"bearerAuth": []}]
    for status, answer in spec["responses"].items():
        if status >= 400:
            description, schema = answer, ERROR_SCHEMA
        else:
            shape, description = answer
            schema = _schema_ref(shape, components, mode="serialization")
        operation["responses"][str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    return operation


def openapi_document(app):
    """Build the OpenAPI 3 document from the declared endpoints of `app`."""
    paths, components = {}, {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        spec = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if spec is None:
            continue
        path_params = _CONVERTER.findall(rule.rule)
        path = _CONVERTER.sub(r"{\2}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(spec, path_params, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "GoBarber API",
            "version": "1.0.0",
            "description": "Hourly appointments with barbers; the GoBarber clients' contract.",
        },
        "servers": [{"url": app.config["APP_URL"]}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
