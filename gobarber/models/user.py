"""Users: customers and providers."""

from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gobarber.extensions import db
from gobarber.models.base import Timestamps
from gobarber.models.file import File


class User(Timestamps, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    provider: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Raised by a password change or reset; tokens and admin sessions carry the version
    # they were issued under, and an older one is refused.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    admin: Mapped[bool] = mapped_column(default=False, server_default=false())
    avatar_id: Mapped[int | None] = mapped_column(
        ForeignKey("files.id", ondelete="SET NULL"), index=True
    )

    avatar: Mapped[File | None] = relationship(foreign_keys=[avatar_id])
