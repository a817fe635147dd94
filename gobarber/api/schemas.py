"""The JSON the API answers with: one pydantic model per response shape of the contract.

Views build these models from rows and return them; `@endpoint` serialises them and puts
their schemas in `/openapi.json`, so the document describes exactly what clients get.
Fields are declared in the order the contract lists the keys, and JSON keys that are not
Python names (`createdAt`, `_id`) are aliases.
"""

from datetime import datetime
from typing import Annotated

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from gobarber.models.mail_delivery import DeliveryStatus
from gobarber.services.appointments import is_cancelable, is_past
from gobarber.shop_time import iso_utc

_DATE_TIME = WithJsonSchema({"type": "string", "format": "date-time"})

# The contract's `2019-07-23T11:00:00.000Z`.
UtcTime = Annotated[datetime, PlainSerializer(iso_utc, return_type=str), _DATE_TIME]
# A slot start in shop time with its offset, `2019-07-23T08:00:00-03:00`.
ShopTime = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str), _DATE_TIME]
# The timestamps of a SQL row, camelCase in JSON.
CreatedAt = Annotated[UtcTime, Field(alias="createdAt")]
UpdatedAt = Annotated[UtcTime, Field(alias="updatedAt")]


class ResponseBody(BaseModel):
    """A response body: no undeclared keys, and every declared key is always sent."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        serialize_by_alias=True,
        json_schema_serialization_defaults_required=True,
    )


def _file_url(file):
    return f"{current_app.config['APP_URL']}/files/{file.path}"


# ---- users and files ----------------------------------------------------------------


class Avatar(ResponseBody):
    """An avatar as sessions, profiles and appointment lists show it."""

    url: str
    id: int
    path: str

    @classmethod
    def of(cls, file):
        """Show `file`, or None when there is no avatar."""
        return None if file is None else cls(url=_file_url(file), id=file.id, path=file.path)


class SignedUpUser(ResponseBody):
    """The answer to a sign-up."""

    id: int
    name: str
    email: str
    provider: bool

    @classmethod
    def of(cls, user):
        """Show a user who just signed up."""
        return cls(id=user.id, name=user.name, email=user.email, provider=user.provider)


class SessionUser(ResponseBody):
    """The signed-in user as a session shows them."""

    id: int
    name: str
    email: str
    provider: bool
    avatar: Avatar | None


class Session(ResponseBody):
    """A signed-in user and their token."""

    user: SessionUser
    token: str

    @classmethod
    def of(cls, user, token):
        """Show a session of `user`."""
        shown = SessionUser(
            id=user.id,
            name=user.name,
            email=user.email,
            provider=user.provider,
            avatar=Avatar.of(user.avatar),
        )
        return cls(user=shown, token=token)


class Profile(ResponseBody):
    """The signed-in user's profile after an update."""

    id: int
    name: str
    email: str
    avatar: Avatar | None

    @classmethod
    def of(cls, user):
        """Show the profile of `user`."""
        return cls(id=user.id, name=user.name, email=user.email, avatar=Avatar.of(user.avatar))


class StoredFile(ResponseBody):
    """An uploaded file and where it is served."""

    url: str
    id: int
    name: str
    path: str
    created_at: CreatedAt
    updated_at: UpdatedAt

    @classmethod
    def of(cls, file):
        """Show a stored file."""
        return cls(
            url=_file_url(file),
            id=file.id,
            name=file.name,
            path=file.path,
            created_at=file.created_at,
            updated_at=file.updated_at,
        )


# ---- providers ------------------------------------------------------------------------


class ProviderAvatar(ResponseBody):
    """An avatar as the provider list shows it: by name, not by id."""

    url: str
    name: str
    path: str

    @classmethod
    def of(cls, file):
        """Show `file`, or None when there is no avatar."""
        return None if file is None else cls(url=_file_url(file), name=file.name, path=file.path)


class ProviderOut(ResponseBody):
    """A provider in the list of providers."""

    id: int
    name: str
    email: str
    avatar_id: int | None
    avatar: ProviderAvatar | None

    @classmethod
    def of(cls, user):
        """Show a provider."""
        return cls(
            id=user.id,
            name=user.name,
            email=user.email,
            avatar_id=user.avatar_id,
            avatar=ProviderAvatar.of(user.avatar),
        )


class Slot(ResponseBody):
    """One slot of a provider's day."""

    time: str = Field(pattern=r"^\d\d:\d\d$")
    value: ShopTime
    available: bool

    @classmethod
    def of(cls, start, free):
        """Show the slot starting at `start`, in shop time."""
        # Validated construction measured faster than model_construct (pydantic-core
        # against Python), so the busiest route needs no shortcut; the f-string is
        # strftime's work in a third of its time.
        return cls(time=f"{start.hour:02d}:{start.minute:02d}", value=start, available=free)


class DayAvailability(ResponseBody):
    """One day of a provider's month: whether an hour of it can still be booked."""

    day: int = Field(ge=1, le=31)
    available: bool

    @classmethod
    def of(cls, day, bookable):
        """Show the shop-local `day`, a date."""
        return cls(day=day.day, available=bookable)


class HourAvailability(ResponseBody):
    """One slot of a provider's day, by its hour: whether it can still be booked."""

    hour: int = Field(ge=0, le=23)
    available: bool

    @classmethod
    def of(cls, start, bookable):
        """Show the slot starting at `start`, in shop time."""
        return cls(hour=start.hour, available=bookable)


# ---- appointments ---------------------------------------------------------------------


class AppointmentProvider(ResponseBody):
    """The provider of an appointment, as the customer's list shows them."""

    id: int
    name: str
    avatar: Avatar | None


class AppointmentSummary(ResponseBody):
    """One of the customer's appointments in their list."""

    id: int
    date: UtcTime
    past: bool
    cancelable: bool
    provider: AppointmentProvider

    @classmethod
    def of(cls, row):
        """Show an appointment in its customer's list."""
        provider = row.provider
        return cls(
            id=row.id,
            date=row.date,
            past=is_past(row),
            cancelable=is_cancelable(row),
            provider=AppointmentProvider(
                id=provider.id, name=provider.name, avatar=Avatar.of(provider.avatar)
            ),
        )


class AppointmentOut(ResponseBody):
    """The keys every appointment answer shares: a booking answers with exactly these."""

    id: int
    date: UtcTime
    canceled_at: UtcTime | None
    past: bool
    cancelable: bool
    user_id: int
    provider_id: int
    created_at: CreatedAt
    updated_at: UpdatedAt

    @classmethod
    def of(cls, row, **more):
        """Show an appointment row, with the extra keys of a subclass in `more`."""
        return cls(
            id=row.id,
            date=row.date,
            canceled_at=row.canceled_at,
            past=is_past(row),
            cancelable=is_cancelable(row),
            user_id=row.user_id,
            provider_id=row.provider_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            **more,
        )


class AppointmentCustomer(ResponseBody):
    """The customer of an appointment, by name only."""

    name: str


class ProviderContact(ResponseBody):
    """The provider of an appointment, with the address their mail goes to."""

    name: str
    email: str


class ScheduledAppointment(AppointmentOut):
    """An appointment in a provider's day."""

    user: AppointmentCustomer

    @classmethod
    def of(cls, row):
        """Show an appointment in its provider's schedule."""
        return super().of(row, user=AppointmentCustomer(name=row.user.name))


class CancellationMail(ResponseBody):
    """Where the provider's cancellation mail stands (`held`: over the customer's daily
    cap, waiting for an operator)."""

    status: DeliveryStatus
    attempts: int
    last_error: str | None
    queued_at: UtcTime
    sent_at: UtcTime | None
    failed_at: UtcTime | None

    @classmethod
    def of(cls, delivery):
        """Show a delivery row, or None when no mail was queued."""
        return None if delivery is None else cls(**cls._fields(delivery))

    @classmethod
    def _fields(cls, delivery):
        return {
            "status": delivery.shown_status,
            "attempts": delivery.attempts,
            "last_error": delivery.last_error,
            "queued_at": delivery.created_at,
            "sent_at": delivery.sent_at,
            "failed_at": delivery.failed_at,
        }


class ReminderMail(CancellationMail):
    """Where the customer's reminder stands: `scheduled` until it is due, `canceled` with
    its appointment."""

    due_at: UtcTime

    @classmethod
    def _fields(cls, delivery):
        return {**super()._fields(delivery), "due_at": delivery.due_at}


class AppointmentDetail(AppointmentOut):
    """One appointment with its people, its cancellation mail and its reminder (GET by id,
    DELETE)."""

    provider: ProviderContact
    user: AppointmentCustomer
    cancellation_mail: CancellationMail | None
    reminder_mail: ReminderMail | None

    @classmethod
    def of(cls, row, delivery, reminder):
        """Show an appointment with the deliveries of its cancellation mail and of its
        reminder, either None when there is none."""
        return super().of(
            row,
            provider=ProviderContact(name=row.provider.name, email=row.provider.email),
            user=AppointmentCustomer(name=row.user.name),
            cancellation_mail=CancellationMail.of(delivery),
            reminder_mail=ReminderMail.of(reminder),
        )


# ---- notifications --------------------------------------------------------------------


class NotificationOut(ResponseBody):
    """A notification; clients key it, and address it in URLs, by the string `_id`."""

    id: str = Field(alias="_id")
    content: str
    user: int
    read: bool
    created_at: CreatedAt
    updated_at: UpdatedAt

    @classmethod
    def of(cls, row):
        """Show a notification row."""
        return cls(
            id=str(row.id),
            content=row.content,
            user=row.user_id,
            read=row.read,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
