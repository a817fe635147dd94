"""One SMTP connection reused across a batch, with a timeout, and how to read its errors."""

import smtplib
from email.utils import parseaddr

from flask_mail import Connection

from gobarber.extensions import mail_settings


class _TimedConnection(Connection):
    """Flask-Mail's connection, but never waiting on the server forever."""

    def __init__(self, state, timeout):
        super().__init__(state)
        self.timeout = timeout

    def configure_host(self):
        mail = self.mail
        smtp_class = smtplib.SMTP_SSL if mail.use_ssl else smtplib.SMTP
        host = smtp_class(mail.server, mail.port, timeout=self.timeout)
        if mail.use_tls:
            host.starttls()
        if mail.username and mail.password:
            host.login(mail.username, mail.password)
        return host


class SmtpSession:
    """Open the connection on the first send, keep it for the next, reopen after a failure."""

    def __init__(self, app):
        self._state = mail_settings(app)
        self._timeout = app.config["MAIL_TIMEOUT"]
        self._connection = None

    def send(self, message):
        if self._connection is None:
            connection = _TimedConnection(self._state, self._timeout)
            connection.host = connection.configure_host()
            self._connection = connection
        try:
            self._connection.send(message)
        except Exception:
            # After an error the session's state is unknown; the next send starts afresh.
            self.close()
            raise

    def close(self):
        connection, self._connection = self._connection, None
        if connection is not None and connection.host is not None:
            try:
                connection.host.quit()
            except (smtplib.SMTPException, OSError):
                connection.host.close()


def is_permanent(error):
    """Tell whether an SMTP error can never succeed on retry (a 5xx about the recipient)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPDataError):
        return error.smtp_code >= 500
    return False


def error_text(error):
    """Word an SMTP error (or any failure of a send) for logs, the row and the dead letter."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
            f" ({parseaddr(recipient)[1] or recipient})"
            for recipient, (code, reply) in error.recipients.items()
        )
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error
        reply = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
        return f"{error.smtp_code} {reply}"
    return f"{type(error).__name__}: {error}"[:500]
