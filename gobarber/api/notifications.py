"""Notifications: the newest of the signed-in user, and marking one read."""

from flask import Blueprint

from gobarber.api.contract import current_user, endpoint
from gobarber.api.schemas import NotificationOut
from gobarber.services import notifications

bp = Blueprint("notifications", __name__)


@bp.get("/notifications")
@endpoint(
    summary="The signed-in user's 20 newest notifications",
    responses={200: (list[NotificationOut], "The notifications")},
)
def index():
    return [NotificationOut.of(row) for row in notifications.latest(user=current_user())]


@bp.put("/notifications/<id:notification_id>")
@endpoint(
    summary="Mark a notification read",
    responses={200: (NotificationOut, "The notification"), 404: "Notification not found"},
)
def mark_read(notification_id):
    row = notifications.mark_read(user=current_user(), notification_id=notification_id)
    return NotificationOut.of(row)
