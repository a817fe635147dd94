"""One SMTP connection reused from mail to mail, with a timeout, and how to read its errors."""

import smtplib
import time
from dataclasses import dataclass
from email.utils import parseaddr

from flask_mail import BadHeaderError, Connection, sanitize_address, sanitize_addresses

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


@dataclass(frozen=True)
class Outgoing:
    """A message ready for the wire: its envelope and its bytes.

    Built where the message is rendered (`of`), so that a sender thread only talks to
    the SMTP server: building the MIME text is CPU work, which threads would only
    contend for.
    """

    sender: str
    recipients: list
    data: bytes

    @classmethod
    def of(cls, message):
        """What Flask-Mail's `Connection.send` would put on the wire for `message`."""
        if message.has_bad_headers():
            raise BadHeaderError(f"a header of {message.subject!r} holds a line break")
        if message.date is None:
            message.date = time.time()
        return cls(
            sender=sanitize_address(message.sender),
            recipients=list(sanitize_addresses(message.send_to)),
            data=message.as_bytes(),
        )


class SmtpSession:
    """Open the connection on the first send, keep it for the next, reopen after a failure."""

    def __init__(self, app):
        self._state = mail_settings(app)
        self._timeout = app.config["MAIL_TIMEOUT"]
        self._host = None

    def send(self, outgoing):
        """Send an `Outgoing` message; raise what the server or the network said."""
        if self._host is None:
            self._host = _TimedConnection(self._state, self._timeout).configure_host()
        try:
            self._host.sendmail(outgoing.sender, outgoing.recipients, outgoing.data)
        except Exception:
            # After an error the session's state is unknown; the next send starts afresh.
            self.close()
            raise

    def close(self):
        host, self._host = self._host, None
        if host is not None:
            try:
                host.quit()
            except (smtplib.SMTPException, OSError):
                host.close()


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
