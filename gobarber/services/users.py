"""Signing up, signing in and changing one's profile."""

from datetime import timedelta

import jwt
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gobarber.errors import Invalid, Unauthorized
from gobarber.extensions import db
from gobarber.models import File, User
from gobarber.services.passwords import hash_password, password_matches
from gobarber.shop_time import now

EMAIL_TAKEN = "User already exists."


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
    if "avatar_id" in changes:
        avatar_id = changes["avatar_id"]
        if avatar_id is not None and db.session.get(File, avatar_id) is None:
            raise Invalid("Avatar file not found")
        user.avatar_id = avatar_id
    if "name" in changes:
        user.name = changes["name"]
    _commit_user(user)
    db.session.refresh(user)
    return user


def issue_token(*, user):
    """Sign a JWT carrying the user's id."""
    issued = now()
    payload = {
        "id": user.id,
        "iat": issued,
        "exp": issued + timedelta(seconds=current_app.config["JWT_EXPIRES_IN"]),
    }
    return jwt.encode(payload, current_app.config["SECRET_KEY"], algorithm="HS256")


def sign_in(*, email, password):
    """Check the credentials; return the user and a fresh token."""
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        raise Unauthorized("User not found")
    if not password_matches(password, user.password_hash):
        raise Unauthorized("Password does not match")
    return user, issue_token(user=user)


def user_from_token(*, token):
    """Return the user a token was issued to, or raise `Token invalid`."""
    try:
        payload = jwt.decode(token, current_app.config["SECRET_KEY"], algorithms=["HS256"])
        user_id = int(payload["id"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        raise Unauthorized("Token invalid") from None
    user = db.session.get(User, user_id) if 0 < user_id < 2**31 else None
    if user is None:
        raise Unauthorized("Token invalid")
    return user
