"""One error family for the whole app, rendered as `{"error": "..."}` (and, for refused
input, the `fields` to blame)."""

import logging

from flask import jsonify, make_response
from werkzeug.exceptions import HTTPException

from gobarber import extensions

log = logging.getLogger(__name__)


class GobarberError(Exception):
    """A failure the client caused or must know about, with its HTTP status."""

    status = 400
    message = "Bad request"

    def __init__(self, message=None):
        super().__init__(message or self.message)
        self.message = message or self.message


class Invalid(GobarberError):
    """Input refused; `fields` maps each field to blame, as the client named it, to a short
    message (`{"password": "at least 6 characters"}`), rendered beside the error text."""

    status = 400
    message = "Validation fails"

    def __init__(self, message=None, *, fields=None):
        super().__init__(message)
        self.fields = dict(fields) if fields else None


class Unauthorized(GobarberError):
    status = 401
    message = "Token invalid"


class NotFound(GobarberError):
    status = 404
    message = "Not found"


class TooLarge(GobarberError):
    status = 413
    message = "Payload too large"


class TooManyAttempts(GobarberError):
    """A throttle refused the request; `retry_after` is in whole seconds."""

    status = 429
    message = "Too many attempts, try again later"

    def __init__(self, message=None, *, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


# Texts for errors raised by Flask and Werkzeug themselves (routing, body size, methods).
HTTP_MESSAGES = {
    400: "Validation fails",
    404: "Not found",
    405: "Method not allowed",
    413: "Payload too large",
    429: "Too many attempts, try again later",
}


def _page(status, message):
    """The shop pages' own answer for an error on one of their paths, or None.

    The pages set `extensions.page_error` (gobarber/web/pages): on their paths an error
    is a page, never JSON or a traceback.
    """
    render = extensions.page_error.get()
    return None if render is None else render(status, message)


def register_error_handlers(app):
    """Render every error as JSON (as a page on the shop's pages); never a stack trace."""

    @app.errorhandler(GobarberError)
    def domain_error(error):
        response = _page(error.status, error.message)
        if response is None:
            body = {"error": error.message}
            if getattr(error, "fields", None):
                body["fields"] = error.fields
            response = jsonify(body), error.status
        response = make_response(response)
        if getattr(error, "retry_after", None) is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error):
        message = HTTP_MESSAGES.get(error.code, error.name)
        page = _page(error.code, message)
        if page is not None:
            return page
        response = jsonify(error=message)
        if error.code == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response, error.code

    @app.errorhandler(Exception)
    def unexpected_error(error):
        log.exception("unhandled error")
        return _page(500, "Internal server error") or (
            jsonify(error="Internal server error"),
            500,
        )
