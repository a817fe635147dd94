"""A local SMTP sink for development: keeps every mail it receives as a .eml file.

`python -m gobarber.mail.sink` listens on MAIL_PORT (2525) and writes each message to
`MAILBOX_DIR` (default `mailbox/`), so a new user can cancel an appointment and read the
mail the provider got. Development only; it needs the `dev` extra (aiosmtpd).
"""

import argparse
import os
import signal
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path


class SaveToFolder:
    """aiosmtpd handler: write each message to its own file."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.count:04d}.eml"
        path.write_bytes(envelope.content)
        message = message_from_bytes(envelope.content, policy=default_policy)
        print(f"mail sink: {message['Subject']!r} to {message['To']} saved as {path}", flush=True)
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MAIL_PORT", 2525)))
    parser.add_argument("--dir", default=os.environ.get("MAILBOX_DIR", "mailbox"))
    args = parser.parse_args()
    from aiosmtpd.controller import Controller

    controller = Controller(SaveToFolder(args.dir), hostname=args.host, port=args.port)
    controller.start()
    print(f"mail sink: listening on {args.host}:{args.port}, saving to {args.dir}/", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
