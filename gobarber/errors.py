"""One error family for the whole app, rendered as `{"error": "..."}` (and, for refused
input, the `fields` to blame)."""

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

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


def register_error_handlers(app):
    """Render every error as JSON; never a stack trace or an HTML page."""

    @app.errorhandler(GobarberError)
    def domain_error(error):
        body = {"error": error.message}
        if getattr(error, "fields", None):
            body["fields"] = error.fields
        response = jsonify(body)
        if getattr(error, "retry_after", None) is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        return response, error.status

    @app.errorhandler(HTTPException)
    def http_error(error):
        message = HTTP_MESSAGES.get(error.code, error.name)
        response = jsonify(error=message)
        if error.code == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response, error.code

    @app.errorhandler(Exception)
    def unexpected_error(error):
        log.exception("unhandled error")
        return jsonify(error="Internal server error"), 500
