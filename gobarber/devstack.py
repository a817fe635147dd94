"""`make run`: the whole system on one machine, for development.

`python -m gobarber.devstack` reads its settings from the environment, then from `.env`:
the environment wins, so `make run PORT=4000` serves on 4000 whatever `.env` says. It
starts a Redis where REDIS_URL points when none answers there and `redis-server` is
installed, upgrades the database, then runs the processes of `Procfile.dev` (the mail sink,
the worker, the reaper and the web), each line of their output behind the process's name.

It prints the URL once the web answers and the mail sink and a worker are up. A process
that dies is started again, with a line saying so, so a killed worker can be watched
coming back and taking up its pending mail; one that keeps dying at start stops everything
instead of looping. Ctrl-C (or SIGTERM) stops the processes one at a time in the
Procfile's order, then Redis, and exits 0.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis
from dotenv import load_dotenv
from redis.connection import parse_url

PROCFILE = "Procfile.dev"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# A process that dies within this many seconds of its start died "at start".
QUICK_DEATH_S = 10
# Deaths at start in a row before giving up (a bad setting, a taken port): the waits
# between them add up to 7.5 s.
MAX_QUICK_DEATHS = 5
MAX_RESTART_DELAY_S = 8
# How long a stop waits for a process (a worker finishing the mails it is sending; the
# SMTP timeout is 10 s by default) before killing it.
STOP_WAIT_S = 15
REDIS_START_S = 10
TICK_S = 0.2


class Output:
    """Print lines behind a name column, one whole line at a time from any thread."""

    COLORS = ("36", "33", "32", "35", "34", "31")

    def __init__(self, names, stream=sys.stdout):
        self.width = max(len(name) for name in names)
        self.stream = stream
        self.lock = threading.Lock()
        self.colors = {}
        if stream.isatty() and not os.environ.get("NO_COLOR"):
            self.colors = {name: self.COLORS[i % len(self.COLORS)] for i, name in enumerate(names)}

    def line(self, name, text):
        label = f"{time.strftime('%H:%M:%S')} {name:<{self.width}} |"
        color = self.colors.get(name)
        if color:
            label = f"\033[{color}m{label}\033[0m"
        with self.lock:
            self.stream.write(f"{label} {text}\n")
            self.stream.flush()

    def say(self, text):
        self.line("run", text)


@dataclass
class Process:
    """One process of the stack, started again when it dies."""

    name: str
    command: str
    output: Output
    popen: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None
    pumps: list = field(default_factory=list)

    def start(self):
        # exec: the shell expands ${PORT:-3333} and is replaced, so signals reach the
        # process itself. Its own process group: Ctrl-C reaches only us, and we stop the
        # processes once each, in order (a worker takes a second signal as "stop now").
        self.popen = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {self.command}"],
            process_group=0,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=process_environment(),
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        pump = threading.Thread(target=self._pump, args=(self.popen.stdout,), daemon=True)
        pump.start()
        self.pumps.append(pump)
        self.output.say(f"started {self.name} (pid {self.popen.pid})")

    def _pump(self, stream):
        for raw in iter(stream.readline, b""):
            self.output.line(self.name, raw.decode(errors="replace").rstrip())
        stream.close()

    @property
    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def how_it_ended(self):
        status = self.popen.returncode
        if status < 0:
            return f"was killed by {signal.Signals(-status).name}"
        return f"exited with status {status}"

    def schedule_restart(self, now):
        """Note this process's death; return the delay before its restart, or None when
        it keeps dying at start."""
        if now - self.started_at < QUICK_DEATH_S:
            self.quick_deaths += 1
        else:
            self.quick_deaths = 1
        if self.quick_deaths >= MAX_QUICK_DEATHS:
            return None
        delay = min(MAX_RESTART_DELAY_S, 0.5 * 2 ** (self.quick_deaths - 1))
        self.restart_at = now + delay
        return delay

    def signal(self, signum):
        if self.running:
            self.popen.send_signal(signum)

    def wait(self, deadline):
        try:
            self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.output.say(f"{self.name} did not stop in {STOP_WAIT_S} s; killing it")
            self.popen.kill()
            self.popen.wait()
        for pump in self.pumps:
            pump.join(timeout=1)


def process_environment():
    """Our environment for a process: the Procfile's gunicorn and python are this
    environment's, and output is not held back in buffers."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"}


def read_procfile(path):
    """Return [(name, command)] from a Procfile: `name: command` lines."""
    entries = []
    for line in Path(path).read_text().splitlines():
        name, colon, command = line.partition(":")
        if line.strip() and not line.lstrip().startswith("#") and colon:
            entries.append((name.strip(), command.strip()))
    return entries


def redis_answers(url):
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except (redis.RedisError, OSError):
        return False
    return True


def redis_command(url):
    """Return the redis-server command line for REDIS_URL's port (and password)."""
    options = parse_url(url)
    command = ["redis-server", "--port", str(options.get("port", 6379))]
    command += ["--bind", "127.0.0.1", "-::1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(Path("instance").resolve())]
    if options.get("password"):
        command += ["--requirepass", options["password"]]
    return command


class Stack:
    """The development stack: Redis when we start it, then the Procfile's processes."""

    def __init__(self, procfile=PROCFILE):
        entries = read_procfile(procfile)
        self.output = Output(["run", "redis", *(name for name, _ in entries)])
        self.processes = [Process(name, command, self.output) for name, command in entries]
        self.redis = None
        self.stopping = threading.Event()
        self.interrupts = 0
        self.port = int(os.environ.get("PORT") or 3333)

    # -- start ------------------------------------------------------------------------

    def ensure_redis(self):
        """Start a Redis where REDIS_URL points when none answers there; False when there
        is none and we cannot start one (said why)."""
        url = os.environ.get("REDIS_URL") or "redis://localhost:6379/0"
        if os.environ.get("REDIS_SENTINELS") or redis_answers(url):
            return True
        options = parse_url(url)
        where = f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"
        if url.startswith("rediss:") or options.get("host", "localhost") not in LOCAL_HOSTS:
            self.output.say(
                f"no Redis answers at {where} (REDIS_URL); start it or change REDIS_URL"
            )
            return False
        if shutil.which("redis-server") is None:
            self.output.say(
                f"no Redis answers at {where} (REDIS_URL) and redis-server is not installed; "
                "install it (Debian/Ubuntu: apt-get install redis-server, macOS: brew install "
                "redis) or point REDIS_URL at a Redis"
            )
            return False
        Path("instance").mkdir(exist_ok=True)
        command = redis_command(url)
        self.redis = Process("redis", shlex.join(command), self.output)
        self.redis.start()
        deadline = time.monotonic() + REDIS_START_S
        while time.monotonic() < deadline and not self.stopping.is_set():
            if redis_answers(url):
                self.output.say(f"redis-server answers on {where} (REDIS_URL); it stops with us")
                return True
            if not self.redis.running:
                self.redis.wait(time.monotonic())
                self.output.say(
                    f"redis-server could not start on {where} (its last lines are above); "
                    "free that port, or give REDIS_URL another one: make run "
                    "REDIS_URL=redis://localhost:6380/0"
                )
                return False
            self.stopping.wait(0.05)
        if not self.stopping.is_set():
            self.output.say(f"redis-server started but does not answer on {where}")
        return False

    def upgrade_database(self):
        done = subprocess.run(
            [sys.executable, "-m", "flask", "db", "upgrade"],
            env={**process_environment(), "FLASK_APP": "gobarber:create_app"},
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            for line in (done.stdout + done.stderr).splitlines():
                self.output.line("release", line)
            self.output.say("the database upgrade failed (above); nothing was started")
        return done.returncode == 0

    # -- readiness --------------------------------------------------------------------

    def _get(self, path):
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)
        except (OSError, ValueError):
            return None, None

    def missing(self):
        """Name what is not up yet: the web, the mail sink, a worker; empty when all are."""
        status, _ = self._get("/health")
        if status != 200:
            return ["the web"]
        _, body = self._get("/health/mail")
        checks = (body or {}).get("checks", {})
        missing = []
        if not checks.get("smtp", {}).get("ok"):
            missing.append("the mail sink")
        if not checks.get("workers", {}).get("ok"):
            missing.append("a worker")
        return missing

    # -- run --------------------------------------------------------------------------

    def on_signal(self, signum, _frame):
        self.interrupts += 1
        if self.interrupts > 1:
            self.output.say("second stop signal: killing every process")
            for process in self._all():
                if process.running:
                    process.popen.kill()
        self.stopping.set()

    def _all(self):
        return [*self.processes, *([self.redis] if self.redis else [])]

    def run(self):
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        if not self.ensure_redis() or self.stopping.is_set():
            self.stop()
            return 0 if self.interrupts else 1
        if not self.upgrade_database():
            self.stop()
            return 1
        for process in self.processes:
            process.start()
        status = self.supervise()
        self.stop()
        return status

    def supervise(self):
        ready = False
        next_readiness_check = time.monotonic()
        waiting_since = time.monotonic()
        while not self.stopping.wait(TICK_S):
            now = time.monotonic()
            for process in self.processes:
                if process.restart_at is not None:
                    if now >= process.restart_at:
                        process.start()
                    continue
                if process.running:
                    continue
                process.wait(now)
                ended = f"{process.name} (pid {process.popen.pid}) {process.how_it_ended()}"
                delay = process.schedule_restart(now)
                if delay is None:
                    self.output.say(
                        f"{ended}, {MAX_QUICK_DEATHS} times in a row at start; stopping "
                        "everything (its last lines are above)"
                    )
                    return 1
                self.output.say(f"{ended}; starting it again in {delay:g} s")
            if not ready and now >= next_readiness_check:
                missing = self.missing()
                if not missing:
                    ready = True
                    self.output.say(
                        f"GoBarber is up on http://localhost:{self.port} (API reference: "
                        f"/docs); mails land in {os.environ.get('MAILBOX_DIR') or 'mailbox'}/."
                        " Ctrl-C stops everything."
                    )
                elif now - waiting_since > 30:
                    self.output.say(f"still waiting for {' and '.join(missing)}")
                    waiting_since = now
                next_readiness_check = now + 0.25
        return 0

    def stop(self):
        """Stop the processes one by one in the Procfile's order (the web first: no new
        cancels; the mail sink after the worker: its sends in flight end), Redis last."""
        running = [
            process for process in [*self.processes, self.redis] if process and process.running
        ]
        if running:
            self.output.say(f"stopping {', '.join(process.name for process in running)}")
        for process in running:
            process.signal(signal.SIGTERM)
            process.wait(time.monotonic() + STOP_WAIT_S)
        self.output.say("stopped")


def main():
    # The environment wins over .env: load_dotenv sets only what is not set already.
    load_dotenv(".env", override=False)
    sys.exit(Stack().run())


if __name__ == "__main__":
    main()
