"""Files users upload, as avatars."""

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from gobarber.extensions import db
from gobarber.models.base import Timestamps


class File(Timestamps, db.Model):
    __tablename__ = "files"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(255), unique=True)
