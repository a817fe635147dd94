"""Request validation, response serialisation and the OpenAPI document, from one set of models.

A view declares what it takes and what it answers with `@endpoint(...)`: the decorator
validates the request against the input models, serialises the model the view returns,
and records both, and `/openapi.json` is built from that record, so the document cannot
drift from what the code accepts or sends.
"""

import json
import re
from functools import wraps

from flask import current_app, g, request
from pydantic import BaseModel, TypeAdapter, ValidationError

from gobarber.api.fields import field_messages
from gobarber.errors import GobarberError, Invalid, TooLarge, Unauthorized
from gobarber.services.users import check_token, read_token, user_from_token

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Refused input: each field to blame, as the client named it, "
            "with a short message",
        },
    },
    "required": ["error"],
}
NUL_MESSAGE = "must not contain NUL characters"


def current_user():
    """Return the signed-in user of this request."""
    return g.user


def signed_in():
    """Return whom this request's token names (a view declared `confirms_token`)."""
    return g.signed_in


def _bearer_token():
    """Return the bearer token: the Authorization header's second word."""
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("Token not provided")
    words = header.split()
    if len(words) < 2:
        raise Unauthorized("Token invalid")
    return words[1]


def authenticate():
    """Find the user of the bearer token; only the header's second word is read."""
    g.user = user_from_token(token=_bearer_token())


# Our bodies are flat objects; anything nested deeper is refused before it is parsed, so
# neither the decoder nor the checks below recurse without bound.
MAX_DEPTH = 32
# A string, or the rest of the text after an unterminated one: the closing quote is
# optional so that every match succeeds at once (a required one makes an unterminated
# string cost quadratic time, from every quote on).
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_BRACKETS = re.compile(r"[][{}]")


def _too_deep(text):
    """Tell whether JSON text nests arrays and objects deeper than MAX_DEPTH."""
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def _has_nul(value):
    """Tell whether a decoded JSON value holds a NUL character anywhere."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _nul_fields(model, data):
    """Name the fields of `model` whose values in `data` hold a NUL."""
    names = {field.alias or name for name, field in model.model_fields.items()}
    return {key: NUL_MESSAGE for key, value in data.items() if key in names and _has_nul(value)}


def _validate(model, data, invalid):
    """Validate a JSON object or query against `model`, naming every field it refuses."""
    try:
        parsed, fields = model.model_validate(data), None
    except ValidationError as error:
        parsed, fields = None, field_messages(error)
    # PostgreSQL text cannot hold NUL; refuse it here rather than fail in the database.
    # A NUL in a key, or under a key the model ignores, has no field to blame.
    if parsed is None or _has_nul(data):
        raise Invalid(invalid, fields={**_nul_fields(model, data), **(fields or {})})
    return parsed


def _body_bytes():
    """Read the whole body, refusing one past the request's `max_content_length`."""
    limit = request.max_content_length
    # A Content-Length past the limit is refused before a byte is read. A chunked body
    # has none, and Werkzeug stops reading it at the limit without telling whether the
    # client sent more: allow one byte more, so that a body past the limit shows.
    request.max_content_length = limit + 1
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise TooLarge()
    return raw


def _json_body(invalid):
    """Decode the JSON body, refusing one nested too deep before parsing it."""
    raw = _body_bytes()
    try:
        # The encodings json.loads accepts (UTF-8, -16, -32), decoded as it does, so that
        # the depth is counted on the same text the decoder reads.
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except UnicodeDecodeError:
        raise Invalid(invalid) from None
    if _too_deep(text):
        raise Invalid(invalid)
    try:
        return current_app.json.loads(text)
    except ValueError:  # malformed JSON, or an integer too long to convert
        raise Invalid(invalid) from None


def allow_upload():
    """Let this request's body reach the upload limit, instead of the JSON one."""
    # Room for the multipart envelope around the file; services.files checks the file.
    request.max_content_length = (current_app.config["MAX_UPLOAD_MB"] + 1) * 1024 * 1024


def parse_body(model, invalid="Validation fails"):
    """Validate the JSON body against `model`; malformed or not an object is invalid.

    A refusal of the body's fields names them in `fields`. A body that is no JSON object
    (not UTF-8, malformed, nested too deep, an array...) has no field to blame: its
    answer is the error text alone.
    """
    data = _json_body(invalid)
    if not isinstance(data, dict):
        raise Invalid(invalid)
    return _validate(model, data, invalid)


def parse_query(model, invalid="Validation fails"):
    """Validate the query string against `model` (first value of each key)."""
    return _validate(model, request.args.to_dict(), invalid)


def _success_shape(status, answer):
    """Return the type a success's view returns: None for an answer without a body."""
    if isinstance(answer, str):
        answer = (None, answer)
    if not isinstance(answer, tuple):
        raise TypeError("declare a success as `status: (ResponseModel, description)`")
    shape, _ = answer
    if shape is None and status != 204:
        raise TypeError("only a 204 answers without a body: `204: description`")
    return shape


def _success(responses):
    """Return the one 2xx status of `responses` and the type its view returns."""
    successes = [(status, answer) for status, answer in responses.items() if status < 400]
    if len(successes) != 1:
        raise TypeError(
            "declare exactly one success, as `status: (ResponseModel, description)` "
            "or `204: description`"
        )
    status, answer = successes[0]
    return status, _success_shape(status, answer)


def _no_content(result, status):
    if result is not None:
        raise TypeError(f"a view declared to answer {status} returned a body")
    response = current_app.response_class(status=status)
    # Nothing follows, so nothing has a type; Flask would call it text/html.
    del response.headers["Content-Type"]
    return response


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
    confirms_token=False,
):
    """Declare a view's inputs and answers: authenticate, validate, serialise, record.

    `responses` maps each status to its description; the success maps to
    `(model, description)`, where the model (or `list[model]`) is what the view returns,
    or is `204: description` for a view that returns None and answers with no body.
    Checks run in the original backend's order: the token, then the provider flag, then
    the input.

    `confirms_token`: the user is not loaded; the view gets `signed_in()` and its service
    checks the token's version in the statement that does its work, a query saved on the
    busiest routes. Any refusal is preceded by the usual check, so a revoked token is
    still told so before anything else.
    """
    if confirms_token and provider_only:
        raise TypeError("provider_only needs the user: it cannot go with confirms_token")
    status, shape = _success(responses)
    # Built once per view: a TypeAdapter compiles its serializer.
    dump = None if shape is None else TypeAdapter(shape).dump_python

    def decorate(view):
        def answer(*args, **kwargs):
            if provider_only and not g.user.provider:
                raise Unauthorized("User is not a provider")
            if upload is not None:
                allow_upload()
            if body is not None:
                kwargs["body"] = parse_body(body, invalid)
            if query is not None:
                kwargs["query"] = parse_query(query, invalid)
            return view(*args, **kwargs)

        @wraps(view)
        def handle(*args, **kwargs):
            if confirms_token:
                g.signed_in = read_token(token=_bearer_token())
                try:
                    result = answer(*args, **kwargs)
                except GobarberError:
                    check_token(signed_in=g.signed_in)
                    raise
            else:
                if auth:
                    authenticate()
                result = answer(*args, **kwargs)
            if dump is None:
                return _no_content(result, status)
            # warnings="error": a view that returns anything but its model fails loudly
            # instead of sending keys the document does not declare.
            return dump(result, mode="json", by_alias=True, warnings="error"), status

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

# What the answers of `documented` views carry, by media type.
HTML_PAGE = {"text/html": {"type": "string"}}
JSON_ERROR = {"application/json": ERROR_SCHEMA}
_BYTES = {"type": "string", "format": "binary"}


def json_content(schema):
    """Return the content of a JSON answer shaped as `schema`, a JSON schema."""
    return {"application/json": schema}


def file_content(*media_types):
    """Return the content of an answer that is a file of one of `media_types`."""
    return {media_type: _BYTES for media_type in media_types}


def _documented_answer(status, answer):
    description, content = (answer, None) if isinstance(answer, str) else answer
    declared = {"description": description}
    if content is not None:
        declared["content"] = {media: {"schema": schema} for media, schema in content.items()}
    if 300 <= status < 400 and status != 304:
        declared["headers"] = {
            "Location": {"description": "Where to go", "schema": {"type": "string"}}
        }
    return declared


def documented(*, summary, responses, method=None, tag=None, form=None, security=None):
    """Record what a view outside `@endpoint` answers, for `/openapi.json`; the view is
    returned as it was, unwrapped.

    `responses` maps each status to `(description, content)`, content mapping each media
    type to its schema (`HTML_PAGE`, `JSON_ERROR`, `json_content(...)`), or to a bare
    description for an answer whose body says nothing (a redirect, a 304). `method`: the
    one method of a rule this declares, when its methods answer differently (stack one
    declaration per method). `tag`: the group, the view's blueprint by default. `form`:
    an urlencoded form the view reads, as a JSON schema. `security`: OpenAPI's list of
    requirements, any one of which will do.
    """
    operation = {
        "summary": summary,
        "responses": {
            str(status): _documented_answer(status, answer) for status, answer in responses.items()
        },
    }
    if form is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": form}},
        }
    if security is not None:
        operation["security"] = security

    def record(view):
        view.openapi_documented = {
            **getattr(view, "openapi_documented", {}),
            method and method.upper(): {"tag": tag, "operation": operation},
        }
        return view

    return record


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
    parameters = _path_parameters(path_params)
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
            shape = _success_shape(status, answer)
            description = answer if isinstance(answer, str) else answer[1]
            schema = None if shape is None else _schema_ref(shape, components, "serialization")
        declared = {"description": description}
        if schema is not None:
            declared["content"] = {"application/json": {"schema": schema}}
        operation["responses"][str(status)] = declared
    return operation


def _path_parameters(path_params):
    return [
        {"name": name, "in": "path", "required": True, "schema": _PATH_TYPES.get(kind, {})}
        for kind, name in path_params
    ]


def _declared_operation(view, method, path_params, components):
    """Return the tag and operation `view` declares for `method`; no operation if none."""
    spec = getattr(view, "openapi", None)
    if spec is not None:
        return None, _operation(spec, path_params, components)
    declared = getattr(view, "openapi_documented", {})
    record = declared.get(method, declared.get(None))
    if record is None:
        return None, None
    operation = dict(record["operation"])
    if path_params:
        operation["parameters"] = _path_parameters(path_params)
    return record["tag"], operation


def openapi_document(app):
    """Build the OpenAPI 3 document from the declared views of `app`.

    Each operation is tagged with its declared tag or its blueprint's name; the tags are
    listed in the order their routes were registered, the clients' contract first.
    """
    paths, components, tags = {}, {}, []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        path_params = _CONVERTER.findall(rule.rule)
        path = _CONVERTER.sub(r"{\2}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            tag, operation = _declared_operation(view, method, path_params, components)
            if operation is None:
                continue
            tag = tag or rule.endpoint.partition(".")[0]
            if tag not in tags:
                tags.append(tag)
            paths.setdefault(path, {})[method.lower()] = {"tags": [tag], **operation}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "GoBarber API",
            "version": "1.0.0",
            "description": (
                "Hourly appointments with barbers: the GoBarber clients' contract, and the "
                "service's own routes (its reference, probes and operator pages)."
            ),
        },
        "servers": [{"url": app.config["APP_URL"]}],
        "tags": [{"name": tag} for tag in tags],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "healthToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "HEALTH_TOKEN: a failing check shows its error's text",
                },
                "pageSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": app.config["SESSION_COOKIE_NAME"],
                    "description": (
                        "The pages' session, the shop's and the operators': from signing in "
                        "at /app/sign-in or /admin/login"
                    ),
                },
            },
        },
    }
