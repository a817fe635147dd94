"""Notifications shown to a user in the clients' notification list."""

from sqlalchemy import ForeignKey, Index, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from gobarber.extensions import db
from gobarber.models.base import Timestamps


class Notification(Timestamps, db.Model):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    read: Mapped[bool] = mapped_column(default=False, server_default=false())

    __table_args__ = (Index("ix_notifications_user_id_created_at", "user_id", "created_at"),)
