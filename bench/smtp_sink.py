"""An SMTP server that accepts every mail and keeps none: `smtp_sink.py PORT DELAY_S`.

It runs in a process of its own (aiosmtpd on one asyncio loop), so neither the sender
under test nor the benchmark shares a GIL with it. `DELAY_S` is how long each DATA
command takes before the 250 reply, as a slow provider's server would.
"""

import asyncio
import signal
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, delay):
        self.delay = delay
        self.received = 0

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        self.received += 1
        return "250 Message accepted for delivery"


def main():
    port, delay = int(sys.argv[1]), float(sys.argv[2])
    controller = Controller(Sink(delay), hostname="127.0.0.1", port=port)
    controller.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
