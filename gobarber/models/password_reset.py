"""Password resets: a single-use token, kept only as its hash, that expires."""

import base64
import hashlib
import hmac
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gobarber.extensions import db
from gobarber.models.base import Timestamps, UTCDateTime
from gobarber.models.user import User


class PasswordReset(Timestamps, db.Model):
    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # SHA-256 of the token, for finding the reset a link names; the token itself is
    # derived from `nonce` and the app's secret when the mail is rendered, and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the token is used, or when a later reset (or a password change) voids it.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    def token(self, secret):
        """Derive this reset's token from its nonce and the app's secret: base64url of
        HMAC-SHA256, 256 bits. The service hands it out and the mail writes it in the link."""
        message = b"password-reset:" + self.nonce.encode()
        digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    @staticmethod
    def hash_of(token):
        """Return the hex SHA-256 a token is stored and looked up by."""
        return hashlib.sha256(token.encode()).hexdigest()

    __table_args__ = (Index("ix_password_resets_user_id_created_at", "user_id", "created_at"),)
