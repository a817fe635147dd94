"""Signing up, signing in and changing one's profile."""

import functools
import time
from datetime import timedelta
from typing import NamedTuple

import jwt
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gobarber.errors import Invalid, Unauthorized
from gobarber.extensions import db
from gobarber.models import File, User
from gobarber.services.files import delete_stored, unlink_upload
from gobarber.services.passwords import (
    check_nothing,
    hash_password,
    needs_rehash,
    password_matches,
)
from gobarber.shop_time import now

EMAIL_TAKEN = "User already exists."
# Also the answer for another user's file, so uploads cannot be found by trying ids.
AVATAR_NOT_FOUND = "Avatar file not found"


def _email_taken(email, *, except_id=None):
    query = select(User.id).where(User.email == email)
    if except_id is not None:
        query = query.where(User.id != except_id)
    return db.session.scalar(query) is not None


def _commit_user(user):
    try:
        db.session.commit()
    except IntegrityError:
        # Another request took the email between our check and this commit.
        db.session.rollback()
        raise Invalid(EMAIL_TAKEN) from None
    return user


def sign_up(*, name, email, password, provider=False):
    """Create a user; the email must be free."""
    if _email_taken(email):
        raise Invalid(EMAIL_TAKEN)
    user = User(name=name, email=email, password_hash=hash_password(password), provider=provider)
    db.session.add(user)
    return _commit_user(user)


def revoke_tokens(*, user):
    """Refuse every token issued to the user so far; the caller commits."""
    # In SQL, so two revocations at once both count.
    user.token_version = User.token_version + 1


def _own_file(user, file_id):
    file = db.session.get(File, file_id)
    if file is None or file.owner_id != user.id:
        raise Invalid(AVATAR_NOT_FOUND)
    return file


def _change_avatar(user, avatar_id):
    """Point the avatar at one of the user's files (or none); return the path to unlink."""
    if avatar_id == user.avatar_id:
        # Clients send the avatar they were shown, which may predate file owners.
        return None
    previous = user.avatar
    user.avatar = None if avatar_id is None else _own_file(user, avatar_id)
    # Only a file of one's own goes: an older avatar may be another user's upload.
    if previous is not None and previous.owner_id == user.id:
        return delete_stored(previous)
    return None


def update_profile(*, user, changes):
    """Change name, email, avatar or password; a new password needs the old one."""
    if "email" in changes and changes["email"] != user.email:
        if _email_taken(changes["email"], except_id=user.id):
            raise Invalid(EMAIL_TAKEN)
        user.email = changes["email"]
    if "old_password" in changes:
        if not password_matches(changes["old_password"], user.password_hash):
            raise Unauthorized("Password does not match")
        user.password_hash = hash_password(changes["password"])
        revoke_tokens(user=user)
    stale_upload = None
    if "avatar_id" in changes:
        stale_upload = _change_avatar(user, changes["avatar_id"])
    if "name" in changes:
        user.name = changes["name"]
    _commit_user(user)
    # Only once the row is gone for good: a failed commit must leave the file served.
    if stale_upload is not None:
        unlink_upload(stale_upload)
    db.session.refresh(user)
    return user


def issue_token(*, user):
    """Sign a JWT carrying the user's id and token version."""
    issued = now()
    payload = {
        "id": user.id,
        "ver": user.token_version,
        "iat": issued,
        "exp": issued + timedelta(seconds=current_app.config["JWT_EXPIRES_IN"]),
    }
    return jwt.encode(payload, current_app.config["SECRET_KEY"], algorithm="HS256")


def _rehash(user, password):
    # Conditional: a password change committed since this sign-in read the row wins.
    db.session.execute(
        update(User)
        .where(User.id == user.id, User.password_hash == user.password_hash)
        .values(password_hash=hash_password(password))
    )
    db.session.commit()


def sign_in(*, email, password):
    """Check the credentials; return the user and a fresh token."""
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        check_nothing()
        raise Unauthorized("User not found")
    if not password_matches(password, user.password_hash):
        raise Unauthorized("Password does not match")
    if needs_rehash(user.password_hash):
        _rehash(user, password)
    return user, issue_token(user=user)


class SignedIn(NamedTuple):
    """Whom a token we signed names, and the token version it was issued under."""

    id: int
    token_version: int


# Checking the signature is most of what reading a token costs (PyJWT looks at every
# character of it), and a client sends the same token with every request. A token that
# passed once is kept as passed, per process and secret; only its expiry, the one check
# that can turn from pass to fail, is made again at each use.
@functools.lru_cache(maxsize=1024)
def _verified_payload(token, secret):
    return jwt.decode(token, secret, algorithms=["HS256"])


def read_token(*, token):
    """Return whom a token names if we signed it and it has not expired, else raise
    `Token invalid`; whether the user still honours it is `require_current`'s business."""
    try:
        payload = _verified_payload(token, current_app.config["SECRET_KEY"])
        expired = "exp" in payload and int(payload["exp"]) <= time.time()
        user_id = int(payload["id"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        raise Unauthorized("Token invalid") from None
    if expired or not 0 < user_id < 2**31:
        raise Unauthorized("Token invalid")
    # Tokens issued before versions existed carry none, and count as version 0.
    return SignedIn(user_id, payload.get("ver", 0))


def require_current(*, signed_in, token_version):
    """Raise `Token invalid` unless the user's row, whose `token_version` a query read
    (None: no such user), still honours the token."""
    if token_version is None or token_version != signed_in.token_version:
        raise Unauthorized("Token invalid")


def check_token(*, signed_in):
    """Raise `Token invalid` unless the token's user exists and still honours it."""
    query = select(User.token_version).where(User.id == signed_in.id)
    require_current(signed_in=signed_in, token_version=db.session.scalar(query))


def user_from_token(*, token):
    """Return the user a token was issued to, or raise `Token invalid`."""
    signed_in = read_token(token=token)
    user = db.session.get(User, signed_in.id)
    require_current(signed_in=signed_in, token_version=user and user.token_version)
    return user
