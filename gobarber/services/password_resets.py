"""Forgotten passwords: a single-use link by mail, and the reset it allows.

A reset row keeps a random nonce and the SHA-256 of the token, never the token: the
token is an HMAC of the nonce under the app's secret (`PasswordReset.token`), so the
worker can write the link from the row while a copy of the database alone opens no
account.
"""

import logging
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from gobarber.errors import Invalid
from gobarber.extensions import db
from gobarber.mail import outbox
from gobarber.models import PasswordReset, User
from gobarber.services.passwords import hash_password
from gobarber.services.users import revoke_tokens
from gobarber.shop_time import now

log = logging.getLogger(__name__)

TOKEN_INVALID = "Invalid token"
TOKEN_EXPIRED = "Token expired"
# However often someone asks for one address: at most one mail a minute, five an hour.
THROTTLE = ((timedelta(minutes=1), 1), (timedelta(hours=1), 5))


def _lock_user(email):
    # Serialises one account's requests, so each counts the ones committed before it.
    # NO KEY UPDATE, as bookings take it: other rows' key-share locks on the user stay free.
    query = select(User).where(User.email == email).with_for_update(key_share=True)
    return db.session.scalar(query)


def _throttled(user):
    current = now()
    for window, most in THROTTLE:
        recent = db.session.scalar(
            select(func.count())
            .select_from(PasswordReset)
            .where(PasswordReset.user_id == user.id, PasswordReset.created_at > current - window)
        )
        if recent >= most:
            return True
    return False


def request_reset(*, email):
    """Queue a reset link to the account of `email`; silently nothing for an unknown
    address or past the throttle. Return the mail's delivery row, or None."""
    user = _lock_user(email)
    if user is None or _throttled(user):
        db.session.rollback()
        if user is not None:
            log.info("password reset for user %s not sent: asked again too soon", user.id)
        return None
    created = now()
    reset = PasswordReset(
        user_id=user.id,
        nonce=secrets.token_urlsafe(32),
        expires_at=created + timedelta(seconds=current_app.config["PASSWORD_RESET_TTL"]),
        created_at=created,
    )
    reset.token_hash = PasswordReset.hash_of(reset.token(current_app.config["SECRET_KEY"]))
    db.session.add(reset)
    delivery = outbox.queue_password_reset_mail(reset=reset, user=user)
    db.session.commit()
    outbox.publish_quietly(delivery)
    return delivery


def reset_password(*, token, password):
    """Set the password of a reset token's user, once; every older token of theirs (JWTs
    and reset links) stops working in the same commit."""
    # Found by its hash through the unique index: no token is compared in Python, so
    # there is no comparison whose timing could tell how much of a guess was right.
    reset = db.session.scalar(
        select(PasswordReset).where(PasswordReset.token_hash == PasswordReset.hash_of(token))
    )
    if reset is None or reset.used_at is not None:
        raise Invalid(TOKEN_INVALID)
    used_at = now()
    if reset.expires_at <= used_at:
        raise Invalid(TOKEN_EXPIRED)
    # Conditional: of two requests with one token, only one changes the row.
    taken = db.session.execute(
        update(PasswordReset)
        .where(PasswordReset.id == reset.id, PasswordReset.used_at.is_(None))
        .values(used_at=used_at, updated_at=used_at)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        db.session.rollback()
        raise Invalid(TOKEN_INVALID)
    db.session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == reset.user_id, PasswordReset.used_at.is_(None))
        .values(used_at=used_at, updated_at=used_at)
        .execution_options(synchronize_session=False)
    )
    user = db.session.get(User, reset.user_id)
    user.password_hash = hash_password(password)
    revoke_tokens(user=user)
    db.session.commit()
    log.info("password of user %s reset with reset %s", user.id, reset.id)
    return user
