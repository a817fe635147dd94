"""Field types the request models share."""

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    EmailStr,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from gobarber.services.passwords import BCRYPT_MAX_BYTES, fits_bcrypt

MAX_ID = 2**31 - 1
# Unicode's control characters (category Cc): C0, DEL and C1.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _no_control_characters(value):
    # A name goes into mail headers and onto operators' terminals, where CR/LF end a
    # header and ESC or CSI drive the terminal. Checked before stripping, so a control
    # character at either end is refused too rather than quietly dropped.
    if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
        raise ValueError("control characters are not allowed")
    return value


def _fits_bcrypt(value):
    # Counted in UTF-8 bytes: 72 characters of "ã" are 144 bytes, of which bcrypt reads 72.
    if not fits_bcrypt(value):
        raise ValueError(f"longer than {BCRYPT_MAX_BYTES} bytes")
    return value


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    BeforeValidator(_no_control_characters),
]
Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(str.lower)]
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


def _iso_datetime(value: str) -> str:
    moment = datetime.fromisoformat(value)  # raises ValueError, which pydantic reports
    # No offset moves a moment by a day, so away from the edges it converts to UTC safely.
    if not date.min < moment.date() < date.max:
        raise ValueError("date out of range")
    return value


IsoDateTime = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_iso_datetime),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
