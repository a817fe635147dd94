"""Notifications: written when something happens to a user, read in their list."""

from sqlalchemy import select

from gobarber.errors import NotFound
from gobarber.extensions import db
from gobarber.models import Notification

PAGE_SIZE = 20


def notify(*, user_id, content):
    """Add a notification for a user; the caller commits."""
    notification = Notification(user_id=user_id, content=content)
    db.session.add(notification)
    return notification


def latest(*, user):
    """Return the user's newest notifications."""
    query = (
        select(Notification)
        .where(Notification.user_id == user.id)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(PAGE_SIZE)
    )
    return db.session.scalars(query).all()


def mark_read(*, user, notification_id):
    """Mark one of the user's notifications read."""
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != user.id:
        raise NotFound("Notification not found")
    notification.read = True
    db.session.commit()
    return notification
