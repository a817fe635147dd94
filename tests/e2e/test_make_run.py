"""`make run` as a newcomer runs it: on a fresh copy of the repository, for real.

The copy has what a clone has (no virtualenv, no .env, no database), so the first run
installs the `run` extra before it starts anything. Settings are given on the command line
(PORT, REDIS_URL, MAIL_PORT) and 6379 is taken, as it is on a machine that already runs a
Redis: the stack must serve where it was told, start its own Redis on REDIS_URL's port,
bring a killed worker back, and stop on Ctrl-C without a make error.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
import requests

from gobarber.testing import free_port, wait_until
from tests.mobile_client import Client

ROOT = Path(__file__).resolve().parents[2]
# A cold start installs the `run` extra first (15-40 s here); the rest waits on conditions.
pytestmark = pytest.mark.timeout(400)


def answers(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A copy of the repository's files as a fresh clone has them."""
    target = tmp_path_factory.mktemp("fresh") / "gobarber"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def taken_6379():
    """Port 6379 taken: by the machine's Redis, or else by a listener of our own."""
    if answers(6379):
        yield
        return
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 6379))
        listener.listen()
        yield


class Run:
    """One `make run` in its own process group, its output in a file."""

    def __init__(self, checkout, log, settings):
        self.log = log
        environment = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
        # The test suite's own interpreter must not leak in: make creates its own venv.
        environment["PATH"] = os.pathsep.join(
            p
            for p in environment["PATH"].split(os.pathsep)
            if Path(sys.executable).parent != Path(p)
        )
        command = ["make", "run", *(f"{name}={value}" for name, value in settings.items())]
        self.started = time.monotonic()
        with open(log, "wb") as out:
            self.make = subprocess.Popen(
                command,
                cwd=checkout,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    def text(self):
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern, timeout, what):
        """Wait until the output matches `pattern`; return the match."""
        found = []

        def seen():
            found[:] = [re.search(pattern, self.text())]
            return found[0] is not None or self.make.poll() is not None

        wait_until(seen, timeout=timeout, what=what)
        assert found[0], f"make run ended before {what}:\n{self.text()[-3000:]}"
        return found[0]

    def pid_of(self, name):
        return int(re.findall(rf"started {name} \(pid (\d+)\)", self.text())[-1])

    def interrupt(self):
        """Press Ctrl-C: SIGINT to the whole foreground process group."""
        os.killpg(self.make.pid, signal.SIGINT)
        return self.make.wait(timeout=60)

    def stop(self):
        """Leave nothing running, whatever the test saw."""
        if self.make.poll() is None:
            try:
                self.interrupt()
            except subprocess.TimeoutExpired:
                os.killpg(self.make.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def ports():
    return {"web": free_port(), "redis": free_port(), "mail": free_port()}


@pytest.fixture(scope="module")
def stack(checkout, taken_6379, ports, tmp_path_factory):
    """The first, cold `make run`, settings on the command line; stopped at the end."""
    settings = {
        "PORT": ports["web"],
        "REDIS_URL": f"redis://localhost:{ports['redis']}/0",
        "MAIL_PORT": ports["mail"],
    }
    run = Run(checkout, tmp_path_factory.mktemp("logs") / "cold.log", settings)
    try:
        run.wait_for(r"GoBarber is up on (\S+)", timeout=300, what="the URL")
        print(f"\nmake run, cold: up in {time.monotonic() - run.started:.1f} s")
        yield run
    finally:
        run.stop()


def test_a_cold_run_serves_where_the_command_line_says(stack, ports, checkout):
    text = stack.text()
    assert f"GoBarber is up on http://localhost:{ports['web']} " in text
    assert requests.get(f"http://127.0.0.1:{ports['web']}/health", timeout=10).status_code == 200
    # Its own Redis, on REDIS_URL's port although 6379 answers.
    assert f"redis-server answers on localhost:{ports['redis']} (REDIS_URL)" in text
    assert redis.Redis(port=ports["redis"]).ping()
    # The URL comes after the sink and a worker are up, and the install stayed lean.
    up = text.index("GoBarber is up")
    assert text.index("mail sink: listening") < up
    assert text.index("worker INFO") < up
    assert not (checkout / ".venv/bin/pytest").exists()
    # .env is written once, with what differs from the defaults only.
    assert re.findall(r"^[A-Z_]+=.*$", (checkout / ".env").read_text(), re.M) == [
        "APP_ENV=development",
        "MAIL_RETRY_BASE=5",
    ]


def test_a_killed_worker_is_started_again_and_sends_the_mail(stack, ports, checkout):
    worker = stack.pid_of("worker")
    os.kill(worker, signal.SIGKILL)
    stack.wait_for(
        rf"worker \(pid {worker}\) was killed by SIGKILL; starting it again",
        timeout=30,
        what="the restart line",
    )
    stack.wait_for(rf"started worker \(pid (?!{worker}\))\d+\)", timeout=30, what="a new worker")

    client = Client(f"http://127.0.0.1:{ports['web']}")
    provider_id, _ = client.person("Barbeiro", "barbeiro@example.com", provider=True)
    _, token = client.person("Cliente", "cliente@example.com")
    day = datetime.now(ZoneInfo("America/Sao_Paulo")) + timedelta(days=2)
    when = day.replace(hour=10, minute=0, second=0, microsecond=0).isoformat()
    booked = client.call(
        "POST", "/appointments", token, json={"provider_id": provider_id, "date": when}
    )
    assert booked.status_code == 200, booked.text
    canceled = client.call("DELETE", f"/appointments/{booked.json()['id']}", token)
    assert canceled.status_code == 200, canceled.text

    def mailed():
        return any(
            "barbeiro@example.com" in path.read_text(errors="replace")
            for path in (checkout / "mailbox").glob("*.eml")
        )

    wait_until(mailed, timeout=60, what="the cancellation mail in mailbox/")


def readme_block(heading):
    """The first ```sh block under `heading` in the README."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"\n{heading}\n") :]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_the_readmes_try_it_block_runs_as_written(stack, ports, checkout):
    settings = {
        "API": f"http://localhost:{ports['web']}",
        "PORT": str(ports["web"]),
        "REDIS_URL": f"redis://localhost:{ports['redis']}/0",
        "MAIL_PORT": str(ports["mail"]),
    }
    done = subprocess.run(
        ["bash", "-e", "-c", readme_block("## Try it")],
        cwd=checkout,
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
        timeout=180,
    )
    shown = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, shown
    lines = done.stdout.splitlines()
    # The cancel answers before the mail goes; then it is sent and in the mailbox.
    assert lines.index("queued") < lines.index("sent"), shown
    assert any(line.startswith("mailbox/") and line.endswith(".eml") for line in lines), shown
    # The refused address: dead at once with the SMTP server's reason, the customer told,
    # the operator's list showing it.
    assert any(line.startswith("550") for line in lines), shown
    assert "Não foi possível avisar Bia Tesoura" in done.stdout, shown
    assert any("cancellation" in line and "bia@fail.example" in line for line in lines), shown
    # The flaky one: two 451s, then sent on the third attempt.
    assert lines[-1] == "3", shown


def test_ctrl_c_stops_everything_without_a_make_error(stack, ports):
    status = stack.interrupt()
    text = stack.text()
    assert "make: ***" not in text
    assert status in (0, -signal.SIGINT), text[-2000:]
    assert text.rstrip().endswith("stopped")
    for port in ports.values():
        assert not answers(port), f"port {port} still answers after Ctrl-C"


def test_a_warm_run_keeps_env_and_the_command_line_wins_over_it(stack, checkout, ports, tmp_path):
    assert stack.make.poll() is not None
    env_file = checkout / ".env"
    mine = env_file.read_text() + f"PORT={free_port()}\n"
    env_file.write_text(mine)
    settings = {
        "PORT": ports["web"],
        "REDIS_URL": f"redis://localhost:{ports['redis']}/0",
        "MAIL_PORT": ports["mail"],
    }
    run = Run(checkout, tmp_path / "warm.log", settings)
    try:
        run.wait_for(r"GoBarber is up on (\S+)", timeout=60, what="the URL")
        print(f"\nmake run, warm: up in {time.monotonic() - run.started:.1f} s")
        assert f"http://localhost:{ports['web']} " in run.text()
        assert "installing" not in run.text()
        assert env_file.read_text() == mine
        assert run.interrupt() in (0, -signal.SIGINT)
    finally:
        run.stop()


def test_a_taken_redis_port_is_reported_at_once(checkout, tmp_path, stack):
    assert stack.make.poll() is not None
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = {"PORT": free_port(), "REDIS_URL": f"redis://localhost:{port}/0"}
        run = Run(checkout, tmp_path / "taken.log", settings)
        try:
            status = run.make.wait(timeout=60)
        finally:
            run.stop()
    elapsed = time.monotonic() - run.started
    text = run.text()
    assert status != 0
    assert f"redis-server could not start on localhost:{port}" in text
    assert "Address already in use" in text
    assert "GoBarber is up" not in text
    assert elapsed < 15, f"took {elapsed:.1f} s to say so"
