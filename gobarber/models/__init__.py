"""The SQL models: users and their files, appointments, notifications, mail deliveries."""

from gobarber.models.appointment import Appointment
from gobarber.models.file import File
from gobarber.models.mail_delivery import MailDelivery
from gobarber.models.notification import Notification
from gobarber.models.user import User

__all__ = ["Appointment", "File", "MailDelivery", "Notification", "User"]
