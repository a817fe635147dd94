"""The SQL models: users and their files, appointments, notifications, password resets,
mail deliveries."""

from gobarber.models.appointment import Appointment
from gobarber.models.file import File
from gobarber.models.mail_delivery import MailDelivery
from gobarber.models.notification import Notification
from gobarber.models.password_reset import PasswordReset
from gobarber.models.user import User

__all__ = ["Appointment", "File", "MailDelivery", "Notification", "PasswordReset", "User"]
