"""Field types the request models share."""

from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, StringConstraints, WithJsonSchema

MAX_ID = 2**31 - 1

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(str.lower)]
Password = Annotated[str, StringConstraints(min_length=6, max_length=128)]


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
