"""Test support that ships with the package (like `flask.testing`), for tests and bench alike.

Deadlines (`wait_until`), free ports, GoBarber's real processes, a private redis-server and
an in-process SMTP server. Only the production dependencies are imported at module level;
the dev-only packages (aiosmtpd, requests) are imported inside what needs them, so
importing this module never requires the `dev` extra.
"""

import asyncio
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

# The checkout holding wsgi.py: the processes run from it, as the Procfile does.
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_until(condition, *, timeout, what):
    """Poll `condition` every 20 ms until it is true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Processes:
    """Start processes with one environment; kill them all at the end."""

    def __init__(self, env, logs):
        self.env = {**os.environ, **{k: str(v) for k, v in env.items()}}
        self.logs = Path(logs)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.running = {}

    def start(self, name, *args):
        """Start `args` as the process `name`, its output going to `logs/<name>.log`."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop_all()
        process = subprocess.Popen(
            list(args), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.running[name] = (process, log)
        return process

    def web(self, workers=2, *, target=("wsgi:app",), probe="/openapi.json"):
        """Start gunicorn as the Procfile does; return its base URL once `probe` answers."""
        import requests

        port = free_port()
        self.start(
            "web",
            str(BIN / "gunicorn"),
            "--preload",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            *target,
        )
        url = f"http://127.0.0.1:{port}"

        def answers():
            try:
                return requests.get(f"{url}{probe}", timeout=1).status_code == 200
            except requests.RequestException:
                self.assert_alive("web")
                return False

        wait_until(answers, timeout=30, what="the web process to answer")
        return url

    def worker(self, name):
        """Start a mail worker process named `name`."""
        return self.start(name, sys.executable, "-m", "consumers.worker", "--name", name)

    def reaper(self, name="reaper"):
        """Start a reaper process named `name`."""
        return self.start(name, sys.executable, "-m", "consumers.reaper", "--name", name)

    def assert_alive(self, name):
        """Fail with the process's log if it has exited."""
        process, _ = self.running[name]
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log(name)}")

    def log(self, name):
        """Return what the process `name` has written so far."""
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill(self, name, sig=signal.SIGKILL):
        """Send `sig` (SIGKILL unless told) to the process `name`."""
        process, _ = self.running[name]
        process.send_signal(sig)
        return process

    def stop_all(self):
        """SIGTERM every process still running, SIGKILL it after 15 s, close the logs."""
        for process, _ in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, log in self.running.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


class PrivateRedis:
    """A redis-server of the test's own on a free port, to stop and start at will."""

    def __init__(self, workdir):
        self.port = free_port()
        self.workdir = Path(workdir)
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        """Start redis-server without persistence; return once it answers PING."""
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)

        def pong():
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        wait_until(pong, timeout=10, what=f"redis-server on port {self.port}")

    def stop(self):
        """Stop the server; what it held is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


class Mailbox:
    """The aiosmtpd handler: keeps messages and their envelopes, answers as a test scripts."""

    def __init__(self):
        self.messages = []
        self.envelopes = []  # aiosmtpd's envelope of each message: mail_from, rcpt_tos
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
            # aiosmtpd starts a fresh envelope for the next transaction, so this one stays.
            self.envelopes.append(envelope)
            self.arrived.notify_all()
        if self.on_message is not None:
            self.on_message(message)
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server (aiosmtpd) in this process on a free port of 127.0.0.1."""

    def __init__(self):
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = None

    def start(self):
        """Listen (again) on this server's port, keeping what it received."""
        from aiosmtpd.controller import Controller

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

    @property
    def envelopes(self):
        """The SMTP envelope of each message received, in the order of `messages`."""
        with self.mailbox.lock:
            return list(self.mailbox.envelopes)

    def wait_for(self, count, timeout=30):
        """Wait until at least `count` messages arrived; return them."""
        with self.mailbox.arrived:
            self.mailbox.arrived.wait_for(lambda: len(self.mailbox.messages) >= count, timeout)
            return list(self.mailbox.messages)

    def refuse(self, address, reply="550 5.1.1 No such user here"):
        """Answer `reply` to RCPT TO `address` from now on."""
        self.mailbox.refuse_recipients[address.lower()] = reply

    def fail_next(self, count):
        """Answer 451 to the next `count` DATA commands."""
        with self.mailbox.lock:
            self.mailbox.transient_failures = count
