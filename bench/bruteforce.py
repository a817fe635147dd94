"""Brute force against a real gunicorn stack: what the throttles let through, what they cost.

Two gunicorns (2 sync workers each) on one database and one private Redis: one with the
throttles on (their defaults, but `RATE_LIMIT_DEFAULT` raised so the latency runs are not
refused; it is still checked on every request), one with `RATE_LIMITS=off`. bcrypt at its
default cost, 12. Prints:

- attempts answered before the first 429: wrong passwords for one account, and one
  address trying one wrong password on each of many accounts;
- median and p90 latency of a wrong password for a known account and for an unknown
  email (on the unthrottled server, so no lock stops the run), and their ratio: an
  attacker must not tell accounts apart by time;
- the throttle's cost: median latency of `GET /bench/ping` with the throttles on and off.

`make bench-bruteforce`, or `.venv/bin/python bench/bruteforce.py`. About a minute.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from system import BENCH, PASSWORD, Processes, system

PING_ROUNDS = 5
PINGS_PER_ROUND = 60
SIGN_INS = 15
SPRAY_MAX = 200


def start_web(env, logs):
    processes = Processes(env, logs)
    target = ("--pythonpath", str(BENCH), "bench_app:app")
    return processes, processes.web(2, target=target, probe="/bench/ping")


def sign_in(url, email, password, address="127.0.0.1"):
    """Post one sign-in from `address` (as the trusted proxy says); return (status, s)."""
    started = time.perf_counter()
    answer = requests.post(
        f"{url}/sessions",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
        timeout=30,
    )
    return answer.status_code, time.perf_counter() - started


def answered_before_refusal(url, emails, address):
    """Try each email with a wrong password until the first 429; return how many were not."""
    for number, email in enumerate(emails):
        status, _ = sign_in(url, email, "wrong-password", address)
        if status == 429:
            return number
    return None


def percentiles(samples):
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.9 * (len(ordered) - 1))]


def ping_latencies(url, count):
    session = requests.Session()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        answer = session.get(f"{url}/bench/ping", timeout=10)
        samples.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.status_code
    return samples


def main():
    with (
        tempfile.TemporaryDirectory(prefix="bench-bruteforce-") as workdir,
        system(Path(workdir), RATE_LIMITS="on", RATE_LIMIT_DEFAULT="1000000 per minute") as bench,
    ):
        bench.people(providers=0)
        known = "cliente@bench.example.com"
        # One trusted proxy: each attack below comes from an address of its own.
        throttled_processes, throttled = start_web(
            {**bench.env, "TRUSTED_PROXIES": "1"}, Path(workdir) / "logs-on"
        )
        open_processes, unthrottled = start_web(
            {**bench.env, "RATE_LIMITS": "off"}, Path(workdir) / "logs-off"
        )
        try:
            run(bench, known, throttled, unthrottled)
        finally:
            throttled_processes.stop_all()
            open_processes.stop_all()


def run(bench, known, throttled, unthrottled):
    env = bench.env
    print(
        f"limits: account {env.get('RATE_LIMIT_SIGN_IN_ACCOUNT', '5 per 15 minutes')}, "
        f"address {env.get('RATE_LIMIT_SIGN_IN_ADDRESS', '50 per 15 minutes')}; "
        f"BCRYPT_ROUNDS {env.get('BCRYPT_ROUNDS', 12)}"
    )
    one_account = answered_before_refusal(throttled, [known] * SPRAY_MAX, "198.51.100.1")
    print(f"one account, wrong passwords: {one_account} answered before the first 429")
    sprayed = [f"victim{number}@bench.example.com" for number in range(SPRAY_MAX)]
    spray = answered_before_refusal(throttled, sprayed, "198.51.100.2")
    print(f"one address, one try on each of many accounts: {spray} answered before the first 429")

    # A right password first: bcrypt's first check in a worker also warms it up.
    assert sign_in(unthrottled, known, PASSWORD)[0] == 200
    known_times = [sign_in(unthrottled, known, "wrong-password")[1] for _ in range(SIGN_INS)]
    unknown_times = [
        sign_in(unthrottled, f"nobody{number}@bench.example.com", "wrong-password")[1]
        for number in range(SIGN_INS)
    ]
    known_median, known_p90 = percentiles(known_times)
    unknown_median, unknown_p90 = percentiles(unknown_times)
    print(
        f"wrong password, known account: median {known_median * 1000:.1f} ms, "
        f"p90 {known_p90 * 1000:.1f} ms"
    )
    print(
        f"wrong password, unknown email: median {unknown_median * 1000:.1f} ms, "
        f"p90 {unknown_p90 * 1000:.1f} ms"
    )
    print(f"known / unknown median: {known_median / unknown_median:.2f}x")

    # Rounds alternate between the two servers, so a drift of the machine hits both.
    on, off = [], []
    for _ in range(PING_ROUNDS):
        on += ping_latencies(throttled, PINGS_PER_ROUND)
        off += ping_latencies(unthrottled, PINGS_PER_ROUND)
    on_median, off_median = statistics.median(on), statistics.median(off)
    print(
        f"GET /bench/ping median: throttles on {on_median * 1000:.2f} ms, "
        f"off {off_median * 1000:.2f} ms, on / off {on_median / off_median:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
