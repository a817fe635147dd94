"""The outbox: one row per mail event, the source of truth for its delivery."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gobarber.extensions import db
from gobarber.models.base import Timestamps, UTCDateTime
from gobarber.models.password_reset import PasswordReset
from gobarber.shop_time import now


class MailKind(StrEnum):
    """What a mail is about; each kind has its templates in `templates/mail/`."""

    CANCELLATION = "cancellation"  # to the provider, when a customer cancels
    PASSWORD_RESET = "password_reset"  # to the user who forgot their password, high priority
    REMINDER = "reminder"  # to the customer, MAIL_REMINDER_BEFORE the appointment


class DeliveryStatus(StrEnum):
    """Where a delivery stands, as the customer's client shows it.

    `held`: the customer's cancellation mails of the day were over the cap; the row is
    never published until an operator releases it (it becomes `queued`). `canceled`: no
    longer owed, never to be sent (a reminder of a cancelled appointment, a reset mail
    whose token was used or expired before it went). A `queued` row whose `due_at` is
    still ahead is shown as `scheduled`.
    """

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    HELD = "held"
    CANCELED = "canceled"
    SCHEDULED = "scheduled"  # shown only: stored as `queued` with `due_at` ahead


class MailDelivery(Timestamps, db.Model):
    __tablename__ = "mail_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    priority: Mapped[str] = mapped_column(String(16))
    appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stream_entry_id: Mapped[str | None] = mapped_column(String(40))
    # Which shard of the streams the event goes to (gobarber/mail/queue.py).
    shard: Mapped[int] = mapped_column(default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the mail is due (a reminder); None: at once.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The reset a password-reset mail carries the link of.
    password_reset_id: Mapped[int | None] = mapped_column(
        ForeignKey("password_resets.id", ondelete="CASCADE"), index=True
    )

    password_reset: Mapped[PasswordReset | None] = relationship()

    @property
    def shown_status(self):
        """The status clients and operators see: `scheduled` for a queued mail not yet due."""
        due_later = self.due_at is not None and self.due_at > now()
        if self.status == DeliveryStatus.QUEUED and due_later:
            return DeliveryStatus.SCHEDULED
        return self.status

    __table_args__ = (Index("ix_mail_deliveries_status_published_at", "status", "published_at"),)
