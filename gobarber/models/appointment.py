"""Appointments: one customer, one provider, one hour."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gobarber.extensions import db
from gobarber.models.base import Timestamps, UTCDateTime
from gobarber.models.user import User


class Appointment(Timestamps, db.Model):
    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    date: Mapped[datetime] = mapped_column(UTCDateTime)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    provider: Mapped[User] = relationship(foreign_keys=[provider_id])

    __table_args__ = (
        # The database, not the application, makes double booking impossible.
        Index(
            "uq_appointments_provider_date_active",
            "provider_id",
            "date",
            unique=True,
            postgresql_where=canceled_at.is_(None),
            sqlite_where=canceled_at.is_(None),
        ),
        Index("ix_appointments_user_id_date", "user_id", "date"),
    )
