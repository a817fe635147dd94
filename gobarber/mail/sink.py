"""A local SMTP sink for development: keeps each mail as a .eml file, or fails on request.

`python -m gobarber.mail.sink` listens on MAIL_PORT (2525) and writes each message to
`MAILBOX_DIR` (default `mailbox/`), so a new user can cancel an appointment and read the
mail the provider got. Recipients under three reserved domains make it answer as a
troubled server would, so a retry and a dead letter can be watched as well:

| recipient        | the sink answers                       | and the worker                  |
|------------------|----------------------------------------|---------------------------------|
| `@fail.example`  | `550 5.1.1` at RCPT TO, every time     | dead-letters it, tells customer |
| `@flaky.example` | `451 4.3.0` at RCPT TO twice, then 250 | retries after a backoff, sends  |
| `@slow.example`  | 250, but answers DATA after 5 s        | waits, then sends               |
| any other        | 250, and saves the mail in `mailbox/`  | sends                           |

The TLD is `.example` (RFC 2606: never a real mailbox) rather than `.test`, because the
API's e-mail field refuses the special-use `.test`: such a provider could not sign up or
sign in. The @flaky.example refusals are counted per address in the sink's memory (a
restart starts afresh): two attempts refused, the third accepted, and the count begins
again, so every mail to the address is retried twice. The @slow.example wait is
`--slow-seconds`; longer than the worker's `MAIL_TIMEOUT` (10 s) it is a timeout, which
is retried too.

In a mail to several recipients each one is answered on its own: the refused are left
out, the others get the mail (after the wait if one is @slow.example); a mail that every
recipient refused is not saved. Each refusal, wait and saved mail is one printed line.
Development only: it needs aiosmtpd, which `make run` installs.
"""

import argparse
import asyncio
import os
import signal
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

FAIL_DOMAIN = "fail.example"
FLAKY_DOMAIN = "flaky.example"
SLOW_DOMAIN = "slow.example"
# An @flaky.example address is refused this many times, then accepted once.
FLAKY_REFUSALS = 2
SLOW_SECONDS = 5.0


def _domain(address):
    return address.rpartition("@")[2].lower()


def _say(line):
    print(f"mail sink: {line}", flush=True)


class Sink:
    """aiosmtpd handler: write each message to its own file; refuse or stall the
    reserved domains' recipients."""

    def __init__(self, folder, *, slow_seconds=SLOW_SECONDS):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.slow_seconds = slow_seconds
        self.count = 0
        self.flaky_refused = {}  # @flaky.example address -> refusals since it was last accepted

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self._refusal(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def _refusal(self, address):
        """The reply that refuses `address`, or None to accept it."""
        domain = _domain(address)
        if domain == FAIL_DOMAIN:
            _say(f"refused {address} (550, @{FAIL_DOMAIN} always fails)")
            return (
                f"550 5.1.1 <{address}>: mailbox refused: @{FAIL_DOMAIN} addresses always "
                "fail (development sink)"
            )
        if domain != FLAKY_DOMAIN:
            return None
        key = address.lower()
        attempt = self.flaky_refused.get(key, 0) + 1
        if attempt > FLAKY_REFUSALS:
            del self.flaky_refused[key]  # the next mail to it is refused twice again
            _say(f"accepted {address} (@{FLAKY_DOMAIN}, attempt {attempt} of {attempt})")
            return None
        self.flaky_refused[key] = attempt
        _say(
            f"refused {address} for now (451, @{FLAKY_DOMAIN}, attempt {attempt} of "
            f"{FLAKY_REFUSALS + 1})"
        )
        return (
            f"451 4.3.0 <{address}>: try again later: @{FLAKY_DOMAIN} refuses the first "
            f"{FLAKY_REFUSALS} attempts at an address, this was attempt {attempt} "
            "(development sink)"
        )

    async def handle_DATA(self, server, session, envelope):
        recipients = ", ".join(envelope.rcpt_tos)
        if any(_domain(address) == SLOW_DOMAIN for address in envelope.rcpt_tos):
            _say(f"answering the mail for {recipients} in {self.slow_seconds:g}s (@{SLOW_DOMAIN})")
            await asyncio.sleep(self.slow_seconds)  # other sessions go on meanwhile
        self.count += 1
        path = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.count:04d}.eml"
        path.write_bytes(envelope.content)
        message = message_from_bytes(envelope.content, policy=default_policy)
        _say(f"{message['Subject']!r} for {recipients} saved as {path}")
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MAIL_PORT", 2525)))
    parser.add_argument("--dir", default=os.environ.get("MAILBOX_DIR", "mailbox"))
    parser.add_argument(
        "--slow-seconds",
        type=float,
        default=SLOW_SECONDS,
        help=f"how long a mail to @{SLOW_DOMAIN} waits for its answer (default %(default)g)",
    )
    args = parser.parse_args()
    from aiosmtpd.controller import Controller

    handler = Sink(args.dir, slow_seconds=args.slow_seconds)
    controller = Controller(handler, hostname=args.host, port=args.port)
    controller.start()
    _say(f"listening on {args.host}:{args.port}, saving to {args.dir}/")
    _say(
        f"@{FAIL_DOMAIN} answers 550, @{FLAKY_DOMAIN} 451 twice then accepts, "
        f"@{SLOW_DOMAIN} waits {args.slow_seconds:g}s"
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
