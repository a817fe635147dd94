"""The JSON shapes of the contract, shared by the resources that return them."""

from flask import current_app

from gobarber.services.appointments import is_cancelable, is_past
from gobarber.shop_time import iso_utc


def file_url(file):
    return f"{current_app.config['APP_URL']}/files/{file.path}"


def timestamps(row):
    return {"createdAt": iso_utc(row.created_at), "updatedAt": iso_utc(row.updated_at)}


def avatar(file):
    """`{url, id, path}` or null, as sessions, profiles and appointment lists show it."""
    if file is None:
        return None
    return {"url": file_url(file), "id": file.id, "path": file.path}


def provider_avatar(file):
    """`{url, name, path}` or null, as the provider list shows it."""
    if file is None:
        return None
    return {"url": file_url(file), "name": file.name, "path": file.path}


def appointment(row):
    """The appointment keys every appointment response shares."""
    return {
        "id": row.id,
        "date": iso_utc(row.date),
        "canceled_at": iso_utc(row.canceled_at),
        "past": is_past(row),
        "cancelable": is_cancelable(row),
        "user_id": row.user_id,
        "provider_id": row.provider_id,
        **timestamps(row),
    }


def mail_status(delivery):
    """The cancellation mail's status, as a client follows it."""
    if delivery is None:
        return None
    return {
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "queued_at": iso_utc(delivery.created_at),
        "sent_at": iso_utc(delivery.sent_at),
        "failed_at": iso_utc(delivery.failed_at),
    }


def appointment_detail(row, delivery):
    """An appointment with its people and its cancellation mail (DELETE and GET by id)."""
    return {
        **appointment(row),
        "provider": {"name": row.provider.name, "email": row.provider.email},
        "user": {"name": row.user.name},
        "cancellation_mail": mail_status(delivery),
    }


def notification(row):
    return {
        "_id": str(row.id),
        "content": row.content,
        "user": row.user_id,
        "read": row.read,
        **timestamps(row),
    }
