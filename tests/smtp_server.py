"""A real SMTP server for tests (aiosmtpd), that can also refuse on command."""

import asyncio
import email
import email.policy
import socket
import threading

from aiosmtpd.controller import Controller


class Mailbox:
    """The aiosmtpd handler: keeps messages, answers with the codes a test scripts."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.refuse_recipients = {}  # address -> "550 ..." reply
        self.transient_failures = 0  # answer 451 to this many DATA commands
        self.delay = 0.0
        self.on_message = None  # called with each accepted message, from the server thread

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refuse_recipients.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            if self.transient_failures > 0:
                self.transient_failures -= 1
                return "451 4.3.0 Try again later"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(message)
            self.arrived.notify_all()
        if self.on_message is not None:
            self.on_message(message)
        return "250 Message accepted for delivery"


class SmtpServer:
    """Start and stop an in-process SMTP server on a free port of 127.0.0.1."""

    def __init__(self):
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = None

    def start(self):
        """Listen (again) on this server's port, keeping what it received."""
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        """Stop listening; connections are refused until `start()`."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self):
        with self.mailbox.lock:
            return list(self.mailbox.messages)

    def wait_for(self, count, timeout=30):
        """Wait until at least `count` messages arrived; return them."""
        with self.mailbox.arrived:
            self.mailbox.arrived.wait_for(lambda: len(self.mailbox.messages) >= count, timeout)
            return list(self.mailbox.messages)

    def refuse(self, address, reply="550 5.1.1 No such user here"):
        self.mailbox.refuse_recipients[address.lower()] = reply

    def fail_next(self, count):
        with self.mailbox.lock:
            self.mailbox.transient_failures = count


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
