"""Run GoBarber's processes (gunicorn, workers, reaper) and a private Redis for tests."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests

from tests.smtp_server import free_port

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


class Processes:
    """Start processes with one environment; kill them all at the end."""

    def __init__(self, env, logs):
        self.env = {**os.environ, **{k: str(v) for k, v in env.items()}}
        self.logs = Path(logs)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.running = {}

    def start(self, name, *args):
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen(
            list(args), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.running[name] = (process, log)
        return process

    def web(self, workers=2, *, target=("wsgi:app",), probe="/openapi.json"):
        """Start gunicorn as the Procfile does; return its base URL once `probe` answers."""
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
        return self.start(name, sys.executable, "-m", "consumers.worker", "--name", name)

    def reaper(self, name="reaper"):
        return self.start(name, sys.executable, "-m", "consumers.reaper", "--name", name)

    def assert_alive(self, name):
        process, _ = self.running[name]
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log(name)}")

    def log(self, name):
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill(self, name, sig=signal.SIGKILL):
        process, _ = self.running[name]
        process.send_signal(sig)
        return process

    def stop_all(self):
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
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
