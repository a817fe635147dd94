"""The sign-in throttle under gunicorn with two workers: one count for both.

Each request goes on a fresh connection, so either worker may take it; gunicorn's access
log names the worker (its pid) that answered each one.
"""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from gobarber.testing import Processes, wait_until
from tests.mobile_client import Client

pytestmark = [pytest.mark.postgres_only, pytest.mark.timeout(120)]

ACCESS_LOG = ("--access-logfile", "-", "--access-logformat", "access %(p)s %(s)s %(U)s")
ANSWER = re.compile(r"^access <(\d+)> (\d{3}) /sessions$", re.MULTILINE)


@pytest.fixture
def throttled(pipeline_env, tmp_path):
    running = Processes({**pipeline_env, "RATE_LIMITS": "on"}, tmp_path / "logs")
    yield running
    running.stop_all()


def answers_by_worker(processes):
    """Return (pid, status) for every POST /sessions answered so far, in order."""
    return [(pid, int(status)) for pid, status in ANSWER.findall(processes.log("web"))]


def test_two_workers_share_one_sign_in_count(throttled):
    url = throttled.web(workers=2, target=(*ACCESS_LOG, "wsgi:app"))
    Client(url).person("Ana", "ana@barber.example.com")
    attempt = {"email": "ana@barber.example.com", "password": "wrong-one"}

    def fail():
        # No session: a new connection each time, taken by whichever worker accepts it.
        return requests.post(f"{url}/sessions", json=attempt, timeout=10).status_code

    assert [fail() for _ in range(5)] == [401] * 5
    statuses = []

    def both_workers_refused():
        with ThreadPoolExecutor(4) as pool:
            statuses.extend(pool.map(lambda _: fail(), range(8)))
        refusing = {pid for pid, status in answers_by_worker(throttled) if status == 429}
        return len(refusing) == 2

    wait_until(both_workers_refused, timeout=30, what="both workers to answer an attempt")

    assert set(statuses) == {429}
    # Why this proves sharing: with a count per process, a worker answers 429 only after
    # it has itself answered 5 failures. Only 5 failures were answered in all, so at
    # least one of the two workers saw fewer than 5, yet both refused.
    answered = answers_by_worker(throttled)
    failures = {pid: 0 for pid, _ in answered}
    for pid, status in answered:
        failures[pid] += status == 401
    assert len(failures) == 2 and sum(failures.values()) == 5
    assert min(failures.values()) < 5
