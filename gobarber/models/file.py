"""Files users upload, as avatars."""

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gobarber.extensions import db
from gobarber.models.base import Timestamps


class File(Timestamps, db.Model):
    __tablename__ = "files"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(255), unique=True)
    # Who uploaded it: only they may take it as their avatar. Files uploaded before owners
    # were recorded have none. `use_alter`: users and files point at each other.
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL", use_alter=True), index=True
    )
    # Bytes on disk, for the per-user quota.
    size: Mapped[int] = mapped_column(default=0, server_default="0")
