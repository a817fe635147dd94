"""The one backoff every retry in GoBarber uses: exponential, capped, with jitter."""

import random

# Past this many doublings any sane cap is reached; it keeps 2**n a small number.
_MAX_DOUBLINGS = 62


def compute_backoff(attempt, *, base, cap, jitter=0.5):
    """Return seconds to wait after `attempt` consecutive failures (1 for the first).

    `base` doubles with each failure up to `cap`; the top `jitter` share of that delay is
    random, so processes that failed together do not retry together. The result lies in
    [delay * (1 - jitter), delay], never 0 for a positive base.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts failures from 1, got {attempt}")
    delay = min(cap, base * 2 ** min(attempt - 1, _MAX_DOUBLINGS))
    return delay - random.uniform(0, delay * jitter)
