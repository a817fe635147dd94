"""Field types the request models share, and the short messages that name what is wrong.

A refused request answers `{"error": ..., "fields": {<field>: <message>}}`; the messages
are fixed texts of ours, chosen from pydantic's error type and our own limits, so they
never repeat what the client sent.
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic.networks import validate_email
from pydantic_core import PydanticCustomError

from gobarber.errors import Invalid
from gobarber.services.passwords import BCRYPT_MAX_BYTES, fits_bcrypt
from gobarber.shop_time import from_iso, from_millis

MAX_ID = 2**31 - 1
MAX_EMAIL_LENGTH = 320
# Unicode's control characters (category Cc): C0, DEL and C1.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class FieldProblem(ValueError):
    """A refused value, with a message of ours that is safe to show the client.

    `field` blames one field for a rule over several, which pydantic reports against
    the whole model rather than a field.
    """

    def __init__(self, message, *, field=None):
        super().__init__(message)
        self.field = field


# ---- the messages ---------------------------------------------------------------------

NOT_VALID = "not a valid value"
WHOLE_NUMBER = "must be a whole number"
TRUE_OR_FALSE = "must be true or false"
OBJECT = "must be an object"

_MESSAGES = {
    "missing": "required",
    "string_type": "must be a string",
    "string_pattern_mismatch": "not in the expected format",
    "int_type": WHOLE_NUMBER,
    "int_parsing": WHOLE_NUMBER,
    "int_from_float": WHOLE_NUMBER,
    "int_parsing_size": "out of range",
    "bool_type": TRUE_OR_FALSE,
    "bool_parsing": TRUE_OR_FALSE,
    "model_type": OBJECT,
    "model_attributes_type": OBJECT,
    "dict_type": OBJECT,
    "list_type": "must be a list",
    "extra_forbidden": "not an accepted field",
}


def _characters(bound, count):
    return f"{bound} {count} character{'' if count == 1 else 's'}"


def _too_short(ctx):
    count = ctx["min_length"]
    return "must not be empty" if count == 1 else _characters("at least", count)


_BOUNDS = {
    "string_too_short": _too_short,
    "string_too_long": lambda ctx: _characters("at most", ctx["max_length"]),
    "greater_than_equal": lambda ctx: f"at least {ctx['ge']}",
    "greater_than": lambda ctx: f"more than {ctx['gt']}",
    "less_than_equal": lambda ctx: f"at most {ctx['le']}",
    "less_than": lambda ctx: f"less than {ctx['lt']}",
}


def _message(error):
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "value_error":
        # Only our own texts: a library's may quote the value it refused.
        cause = ctx.get("error")
        return str(cause) if isinstance(cause, FieldProblem) else NOT_VALID
    if kind in _BOUNDS:
        return _BOUNDS[kind](ctx)
    return _MESSAGES.get(kind, NOT_VALID)


def value_message(error: ValidationError) -> str:
    """The message for a lone value's first problem (a page's form field)."""
    return _message(error.errors(include_url=False, include_input=False)[0])


def field_messages(error: ValidationError) -> dict[str, str]:
    """Name each refused field as the client sent it (dotted when nested), with a short
    message; a field's first problem is the one told."""
    messages = {}
    for problem in error.errors(include_url=False, include_input=False):
        location = problem["loc"]
        cause = problem.get("ctx", {}).get("error")
        if not location and isinstance(cause, FieldProblem) and cause.field:
            location = (cause.field,)
        if location:
            messages.setdefault(".".join(map(str, location)), _message(problem))
    return messages


# ---- people ---------------------------------------------------------------------------


def _no_control_characters(value):
    # A name goes into mail headers and onto operators' terminals, where CR/LF end a
    # header and ESC or CSI drive the terminal. Checked before stripping, so a control
    # character at either end is refused too rather than quietly dropped.
    if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
        raise FieldProblem("control characters are not allowed")
    return value


def _email(value):
    # pydantic's EmailStr, whose error quotes email-validator's reason, which may quote
    # the address.
    try:
        return validate_email(value)[1].lower()
    except PydanticCustomError:
        raise FieldProblem("not a valid e-mail address") from None


def _fits_bcrypt(value):
    # Counted in UTF-8 bytes: 72 characters of "ã" are 144 bytes, of which bcrypt reads 72.
    if not fits_bcrypt(value):
        raise FieldProblem(f"at most {BCRYPT_MAX_BYTES} bytes in UTF-8")
    return value


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    BeforeValidator(_no_control_characters),
]
Email = Annotated[
    str,
    StringConstraints(max_length=MAX_EMAIL_LENGTH),
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": MAX_EMAIL_LENGTH}),
]
Password = Annotated[
    str,
    StringConstraints(min_length=6, max_length=BCRYPT_MAX_BYTES),
    AfterValidator(_fits_bcrypt),
]
# Signing in checks no minimum: a password the original backend accepted still opens.
SignInPassword = Annotated[
    str,
    StringConstraints(min_length=1, max_length=BCRYPT_MAX_BYTES),
    AfterValidator(_fits_bcrypt),
]


# ---- moments --------------------------------------------------------------------------

MAX_DATE_LENGTH = 64
DATE_FORMS = "must be an ISO 8601 date-time or milliseconds since the epoch"
OUT_OF_RANGE = "out of range"
# A digit string (a minus sign counts) longer than this is milliseconds; a shorter one is
# read as ISO 8601, whose basic form `20190723` is all digits, so that a year such as
# `2019` is refused rather than taken for two seconds after 1970.
MILLIS_AFTER_LENGTH = 8
_DIGITS = re.compile(r"-?[0-9]+")
# No offset moves a moment by a day, so a UTC day strictly inside the calendar has a
# shop-local day, and hours around it, that datetime can hold.
FIRST_DAY, LAST_DAY = date.min + timedelta(days=1), date.max - timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
MIN_MILLIS = (datetime.combine(FIRST_DAY, time(), tzinfo=UTC) - _EPOCH) // _MILLISECOND
MAX_MILLIS = (datetime.combine(date.max, time(), tzinfo=UTC) - _EPOCH) // _MILLISECOND - 1

MOMENT_DESCRIPTION = (
    "An ISO 8601 date or date-time (`2019-07-23`, `2019-07-23T08:00:00-03:00`, "
    "`2019-07-23T11:00:00.000Z`; without an offset it is shop time), or milliseconds since "
    "the epoch (`1563879600000`): a JSON integer, or a string of digits, with an optional "
    f"minus sign, longer than {MILLIS_AFTER_LENGTH} characters. A shorter digit string is "
    "read as ISO 8601 (`20190723` is 23 July 2019), so a year such as `2019` is never taken "
    f"for milliseconds. The moment must fall between {FIRST_DAY} and {LAST_DAY} (UTC)."
)


def _moment(value):
    if isinstance(value, str) and len(value) <= MAX_DATE_LENGTH:
        raw = value.strip()
        millis = len(raw) > MILLIS_AFTER_LENGTH and _DIGITS.fullmatch(raw) is not None
    elif isinstance(value, int) and not isinstance(value, bool):
        raw, millis = value, True
    else:
        raise FieldProblem(DATE_FORMS)
    try:
        moment = from_millis(raw) if millis else from_iso(raw)
    except Invalid:
        # Milliseconds are well formed by now: they fail only past what datetime holds.
        raise FieldProblem(OUT_OF_RANGE if millis else DATE_FORMS) from None
    if not FIRST_DAY <= moment.date() <= LAST_DAY:
        raise FieldProblem(OUT_OF_RANGE)
    return moment


# An aware datetime in UTC. Reading a moment without an offset needs the shop's time
# zone, so it is validated inside a request.
Moment = Annotated[
    datetime,
    PlainValidator(_moment),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "string", "format": "date-time", "maxLength": MAX_DATE_LENGTH},
                {"type": "string", "format": "date"},
                {"type": "integer", "minimum": MIN_MILLIS, "maximum": MAX_MILLIS},
            ],
            "description": MOMENT_DESCRIPTION,
        }
    ),
]
