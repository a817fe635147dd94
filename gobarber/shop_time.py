"""The shop's clock: UTC in storage, the shop's time zone for days, slots and wording."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import current_app

from gobarber.errors import Invalid


def shop_zone() -> ZoneInfo:
    """Return the shop's time zone (`SHOP_TIMEZONE`)."""
    return ZoneInfo(current_app.config["SHOP_TIMEZONE"])


def now() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


def local(moment: datetime) -> datetime:
    """The moment on the shop's clock."""
    return moment.astimezone(shop_zone())


def today() -> date:
    """The shop's date now."""
    return local(now()).date()


def iso_utc(moment: datetime | None) -> str | None:
    """Format as the contract's `2019-07-23T11:00:00.000Z`."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def from_millis(raw: str) -> datetime:
    """Read milliseconds since the epoch, as the mobile client sends them."""
    try:
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise Invalid("Invalid date") from None


def from_iso(raw: str) -> datetime:
    """Read an ISO 8601 date or date-time; without an offset it is shop time."""
    try:
        moment = datetime.fromisoformat(raw.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=shop_zone())
        return moment.astimezone(UTC)
    except (AttributeError, ValueError, OverflowError):
        raise Invalid("Invalid date") from None


def day_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """Return the UTC start and end of the shop-local day that holds `moment`."""
    try:
        day = moment.astimezone(shop_zone()).date()
        return day_start(day), day_start(day + timedelta(days=1))
    except (OverflowError, ValueError):
        raise Invalid("Invalid date") from None


def day_start(day: date) -> datetime:
    """Return the UTC instant the shop-local `day` starts."""
    return datetime.combine(day, time(0), tzinfo=shop_zone()).astimezone(UTC)


def slots_of_day(moment: datetime) -> list[datetime]:
    """Return the slot starts, in shop time, of the shop-local day that holds `moment`."""
    day = moment.astimezone(shop_zone()).date()
    try:
        return slots_on(day)
    except (OverflowError, ValueError):
        raise Invalid("Invalid date") from None


def slots_on(day: date) -> list[datetime]:
    """Return the slot starts, in shop time, of the shop-local `day`."""
    zone = shop_zone()
    return [
        datetime.combine(day, time(hour, minute), tzinfo=zone)
        for hour, minute in current_app.config["SHOP_SLOTS"]
    ]


def hour_start(moment: datetime) -> datetime:
    """Return the start of the shop-local hour that holds `moment`, in shop time."""
    local = moment.astimezone(shop_zone())
    return local.replace(minute=0, second=0, microsecond=0)


def is_slot(local: datetime) -> bool:
    """Tell whether a shop-local time starts one of the shop's slots."""
    return (local.hour, local.minute) in current_app.config["SHOP_SLOTS"]


def describe_pt_br(moment: datetime) -> str:
    """Word a moment as the clients show it: `dia 23 de julho, às 8:00h`, in shop time."""
    local = moment.astimezone(shop_zone())
    return format_datetime(local, "'dia' dd 'de' MMMM', às' H:mm'h'", locale="pt_BR")
