"""Test support that ships with the package (like `flask.testing`), for tests and bench alike.

Deadlines (`wait_until`), free ports, GoBarber's real processes, a private redis-server, a
private Redis Cluster and Sentinel setup, and an in-process SMTP server. Only the production
dependencies are imported at module level; the dev-only packages (aiosmtpd, requests) are
imported inside what needs them, so importing this module never requires the `dev` extra.
"""

import asyncio
import contextlib
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
from urllib.parse import quote

import redis
import redis.crc

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


def terminate(running, *, grace):
    """SIGTERM each (process, log file) pair's process still running, SIGKILL it after
    `grace` seconds, and close its log."""
    running = list(running)
    for process, _ in running:
        if process.poll() is None:
            process.terminate()
    for process, log in running:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


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
        terminate(self.running.values(), grace=15)


class RedisAccess:
    """How a private redis-server is reached: with a password (`requirepass`, and
    `masterauth` for its replicas) and over TLS only, each if asked for.

    `tls` is a directory holding `ca.crt`, `server.crt` and `server.key`: a certificate
    for 127.0.0.1 signed by that CA. Clients check the server's certificate against the
    CA; the servers ask none of clients.
    """

    def __init__(self, password=None, tls=None):
        self.password = password
        self.tls = Path(tls) if tls else None

    @property
    def ca(self):
        """The CA certificate's path, or None without TLS."""
        return str(self.tls / "ca.crt") if self.tls else None

    def directives(self, port):
        """(name, value) pairs of redis.conf to listen on `port` with this access."""
        pairs = []
        if self.password:
            pairs += [("requirepass", self.password), ("masterauth", self.password)]
        if not self.tls:
            return [("port", str(port)), *pairs]
        return [
            ("port", "0"),
            ("tls-port", str(port)),
            ("tls-cert-file", str(self.tls / "server.crt")),
            ("tls-key-file", str(self.tls / "server.key")),
            ("tls-ca-cert-file", self.ca),
            ("tls-auth-clients", "no"),
            # A replica, the cluster bus and a sentinel speak TLS to the others too.
            ("tls-replication", "yes"),
            ("tls-cluster", "yes"),
            *pairs,
        ]

    def arguments(self, port):
        """The `directives` as redis-server's command-line arguments."""
        return [word for name, value in self.directives(port) for word in (f"--{name}", value)]

    def client_options(self):
        """redis-py's keyword arguments to reach a server with this access."""
        options = {"password": self.password} if self.password else {}
        if self.tls:
            options.update(ssl=True, ssl_ca_certs=self.ca)
        return options

    def cli_options(self):
        """redis-cli's options to reach a server with this access."""
        options = ["-a", self.password, "--no-auth-warning"] if self.password else []
        return [*options, "--tls", "--cacert", self.ca] if self.tls else options

    def url(self, address, db=0):
        """The URL of the server at `address` ("host:port"): rediss:// with the CA to
        check it against (`?ssl_ca_certs=`) under TLS, the password quoted."""
        scheme = "rediss" if self.tls else "redis"
        credentials = f":{quote(self.password, safe='')}@" if self.password else ""
        query = f"?ssl_ca_certs={quote(self.ca)}" if self.tls else ""
        return f"{scheme}://{credentials}{address}/{db}{query}"


def _throwaway_server(workdir):
    """redis-server arguments for a test's own server: loopback only, nothing saved."""
    return ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]


class PrivateRedis:
    """A redis-server of the test's own on a free port, to stop and start at will; with
    `password=` and `tls=` (a directory of certificates, see `RedisAccess`) it asks for them."""

    def __init__(self, workdir, *, password=None, tls=None):
        self.port = free_port()
        self.workdir = Path(workdir)
        self.process = None
        self.access = RedisAccess(password, tls)

    @property
    def url(self):
        return self.access.url(f"127.0.0.1:{self.port}")

    def start(self):
        """Start redis-server without persistence; return once it answers PING."""
        self.process = subprocess.Popen(
            [
                "redis-server",
                *self.access.arguments(self.port),
                *_throwaway_server(self.workdir),
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
        self.hang_up_on = set()  # addresses whose RCPT TO drops the connection
        self.transient_failures = 0  # answer 451 to this many DATA commands
        self.delay = 0.0
        self.on_message = None  # called with each accepted message, from the server thread
        self.sending_now = 0  # DATA commands being answered at this moment
        self.most_at_once = 0  # the most ever answered at once
        self.peers = []  # the client address of each message's connection

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.hang_up_on:
            server.transport.close()  # a connection lost mid-transaction
            return "421 4.4.2 Connection dropped"
        reply = self.refuse_recipients.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.sending_now += 1
            self.most_at_once = max(self.most_at_once, self.sending_now)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return self._answer(session, envelope)
        finally:
            with self.lock:
                self.sending_now -= 1

    def _answer(self, session, envelope):
        with self.lock:
            if self.transient_failures > 0:
                self.transient_failures -= 1
                return "451 4.3.0 Try again later"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(message)
            # aiosmtpd starts a fresh envelope for the next transaction, so this one stays.
            self.envelopes.append(envelope)
            self.peers.append(session.peer)
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


class _Servers:
    """The redis-server processes of one topology, each writing to `<workdir>/<name>.log`."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.running = {}  # name -> (process, log)

    def start(self, name, *args):
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen(
            ["redis-server", *args], cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
        )
        self.running[name] = (process, log)
        return process

    def log(self, name):
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def assert_alive(self, name):
        """Fail with the server's log if it has exited."""
        process, _ = self.running[name]
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log(name)}")

    def wait_for_ping(self, name, client):
        def pong():
            try:
                return client.ping()
            except redis.ConnectionError:
                self.assert_alive(name)
                return False

        wait_until(pong, timeout=10, what=f"{name} to answer PING")

    def stop(self):
        """SIGTERM every server, SIGKILL it after 10 s; safe to call twice."""
        running, self.running = self.running, {}
        terminate(running.values(), grace=10)


def _free_ports(count):
    """`count` distinct ports that nothing listens on right now."""
    ports = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _split_address(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _info_field(client, section, field):
    """One field of INFO `section` as the server says it now; None if it does not answer."""
    try:
        return client.info(section).get(field)
    except redis.ConnectionError:
        return None


class PrivateCluster:
    """A Redis Cluster of the test's own: `masters` redis-server nodes (no replicas) on free
    ports of 127.0.0.1, joined by `redis-cli --cluster create`, each logging to
    `<workdir>/node-<port>.log`. It can move a slot from one master to another as
    `redis-cli --cluster reshard` does, in one call or step by step. With `password=` and
    `tls=` (a directory of certificates, see `RedisAccess`) every node asks for them, and the
    nodes speak TLS to each other too."""

    SLOTS = redis.crc.REDIS_CLUSTER_HASH_SLOTS

    def __init__(self, workdir, masters=3, *, password=None, tls=None):
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.workdir = Path(workdir)
        self.access = RedisAccess(password, tls)
        # Each node's cluster bus listens on a port of its own too (`--cluster-port`), rather
        # than on port + 10000, which may be taken or above 65535.
        ports = _free_ports(2 * masters)
        self.ports, self.bus_ports = ports[:masters], ports[masters:]
        self.servers = _Servers(self.workdir)
        self.clients = {}
        self.ids = {}  # address -> node id

    @property
    def nodes(self):
        return [f"127.0.0.1:{port}" for port in self.ports]

    @property
    def url(self):
        return self.access.url(self.nodes[0])

    def node_client(self, address, **kwargs):
        """A plain `redis.Redis` connected to the one node at `address` ("host:port")."""
        host, port = _split_address(address)
        return redis.Redis(host=host, port=port, **{**self.access.client_options(), **kwargs})

    def start(self):
        """Start the nodes and create the cluster; return once every node serves every slot
        as the others say it does."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        for port, bus_port in zip(self.ports, self.bus_ports, strict=True):
            self.servers.start(
                f"node-{port}",
                *self.access.arguments(port),
                "--cluster-port",
                str(bus_port),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.workdir / f"nodes-{port}.conf"),
                "--cluster-node-timeout",
                "2000",
                *_throwaway_server(self.workdir),
            )
        for address, port in zip(self.nodes, self.ports, strict=True):
            self.servers.wait_for_ping(f"node-{port}", self._client(address))
        self._redis_cli("--cluster", "create", *self.nodes, "--cluster-replicas", "0")
        for address in self.nodes:
            self.ids[address] = self._client(address).execute_command("CLUSTER", "MYID").decode()
        wait_until(self._serving, timeout=30, what="every cluster node to serve every slot")

    def _redis_cli(self, *args):
        log_path = self.workdir / "redis-cli.log"
        with open(log_path, "ab") as log:
            done = subprocess.run(
                ["redis-cli", *self.access.cli_options(), *args, "--cluster-yes"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=60,
            )
        if done.returncode != 0:
            output = log_path.read_text(errors="replace")
            raise AssertionError(f"redis-cli {' '.join(args)} failed:\n{output}")

    def _client(self, address):
        """This cluster's own client to one node (kept, and closed in `stop()`)."""
        if address not in self.clients:
            self.clients[address] = self.node_client(address, socket_timeout=10)
        return self.clients[address]

    def _view(self, address):
        """The slot map as the node at `address` sees it: a sorted tuple of
        (first slot, last slot, master address); None if it does not answer."""
        try:
            nodes = self._client(address).execute_command("CLUSTER", "NODES").decode()
        except redis.ConnectionError:
            return None
        ranges = []
        for line in nodes.splitlines():
            fields = line.split()
            if "master" not in fields[2].split(","):
                continue
            host_port = fields[1].split("@", 1)[0]
            if host_port.startswith(":"):  # a node that does not know its own IP yet
                return None
            for entry in fields[8:]:
                if entry.startswith("["):  # "[slot->-id]" / "[slot-<-id]": a migration
                    continue
                first, _, last = entry.partition("-")
                ranges.append((int(first), int(last or first), host_port))
        return tuple(sorted(ranges))

    def _serving(self):
        """True when every node says cluster_state:ok and all see the same, full slot map."""
        for address in self.nodes:
            try:
                info = self._client(address).execute_command("CLUSTER", "INFO").decode()
            except redis.ConnectionError:
                return False
            if "cluster_state:ok" not in info.split():
                return False
        views = {self._view(address) for address in self.nodes}
        if len(views) != 1 or None in views:
            return False
        (view,) = views
        return sum(last - first + 1 for first, last, _ in view) == self.SLOTS

    def owner(self, slot):
        """The address of the master that serves `slot`, as the first node sees it."""
        view = self._view(self.nodes[0])
        if view is None:
            raise AssertionError(f"{self.nodes[0]} does not answer CLUSTER NODES")
        for first, last, address in view:
            if first <= slot <= last:
                return address
        raise AssertionError(f"no master serves slot {slot}")

    @staticmethod
    def slot(key):
        """The hash slot of `key` (str or bytes)."""
        return redis.crc.key_slot(key.encode() if isinstance(key, str) else key)

    def masters_of(self, keys):
        """The addresses of the masters that serve `keys`."""
        return {self.owner(self.slot(key)) for key in keys}

    def begin_migration(self, slot, target):
        """Mark `slot` IMPORTING on `target` and MIGRATING on its owner; move no key yet."""
        source = self.owner(slot)
        if source == target:
            raise ValueError(f"slot {slot} is already served by {target}")
        target_client, source_client = self._client(target), self._client(source)
        target_client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", self.ids[source])
        source_client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", self.ids[target])
        return source

    def move_keys(self, slot, target, batch=10):
        """MIGRATE up to `batch` keys of `slot` from its owner to `target`; return how many
        moved (0 once none are left). `begin_migration` must have come first."""
        source = self._client(self.owner(slot))
        keys = source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
        if not keys:
            return 0
        host, port = _split_address(target)
        auth = ("AUTH", self.access.password) if self.access.password else ()
        source.execute_command("MIGRATE", host, port, "", 0, 5000, *auth, "KEYS", *keys)
        return len(keys)

    def finish_migration(self, slot, target):
        """Give `slot` to `target` on the target, the old owner and every other master (in
        that order, as redis-cli does); return once every node agrees. The old owner
        refuses while it still holds keys of the slot."""
        source = self.owner(slot)
        others = [address for address in self.nodes if address not in (target, source)]
        for address in [target, source, *others]:
            self._client(address).execute_command(
                "CLUSTER", "SETSLOT", slot, "NODE", self.ids[target]
            )

        def moved():
            return self._serving() and self.owner(slot) == target

        wait_until(moved, timeout=30, what=f"every node to see slot {slot} on {target}")

    def migrate_slot(self, slot, target, batch=100):
        """Move `slot` and its keys to the master at `target`, as redis-cli does."""
        self.begin_migration(slot, target)
        while self.move_keys(slot, target, batch=batch):
            pass
        self.finish_migration(slot, target)

    def reset(self):
        """Close every open migration (CLUSTER SETSLOT ... STABLE) and delete every key, for
        the next test; the slots stay where they are now."""
        for address in self.nodes:
            client = self._client(address)
            myself = next(
                line.split()
                for line in client.execute_command("CLUSTER", "NODES").decode().splitlines()
                if "myself" in line.split()[2].split(",")
            )
            for entry in myself[8:]:
                if entry.startswith("["):  # "[slot->-id]" or "[slot-<-id]"
                    slot = int(entry[1:].split("-", 1)[0])
                    client.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        for address in self.nodes:
            self._client(address).flushall()
        wait_until(self._serving, timeout=30, what="every cluster node to serve every slot")

    def stop(self):
        """Stop every node; what the cluster held is gone. Safe to call twice."""
        clients, self.clients = self.clients, {}
        for client in clients.values():
            client.close()
        self.servers.stop()


class PrivateSentinel:
    """A master, its replica and one sentinel watching them as `service`, on free ports of
    127.0.0.1, each logging to `<workdir>/<name>.log`. The sentinel runs with short
    internal periods (SENTINEL DEBUG) so that a failover completes in a few seconds.

    With `password=` the master and the replica ask for it (the sentinel knows it:
    `sentinel auth-pass`); with `sentinel_password=` the sentinel asks for one of its
    own; with `tls=` (a directory of certificates, see `RedisAccess`) all three speak TLS
    only, to clients and to each other."""

    def __init__(
        self, workdir, service="gobarber-test", *, password=None, sentinel_password=None, tls=None
    ):
        self.workdir = Path(workdir)
        self.service = service
        self.access = RedisAccess(password, tls)
        self.sentinel_access = RedisAccess(sentinel_password, tls)
        self.master_port, self.replica_port, self.sentinel_port = _free_ports(3)
        self.servers = _Servers(self.workdir)
        self.clients = {}

    @property
    def sentinels(self):
        return f"127.0.0.1:{self.sentinel_port}"

    @property
    def url(self):
        """The URL of the master as the sentinel names it now (its password and TLS too)."""
        return self.access.url(self.master_address())

    def master_address(self):
        """The master's "host:port" as the sentinel says it now."""
        host, port = self._sentinel().execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
        )
        return f"{host.decode()}:{int(port)}"

    def start(self):
        """Start the three servers; return once the replica is in sync and the sentinel
        knows the master and can fail over to the replica."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _data_server(self, name, port, *args):
        self.servers.start(
            name,
            *self.access.arguments(port),
            *_throwaway_server(self.workdir),
            # A full sync starts at once, not after the default 5 s wait for more replicas;
            # the replica writes what it receives to a file of its own.
            "--repl-diskless-sync-delay",
            "0",
            "--dbfilename",
            f"dump-{port}.rdb",
            *args,
        )
        self.servers.wait_for_ping(name, self._client(f"127.0.0.1:{port}"))

    def _start(self):
        master, replica = f"127.0.0.1:{self.master_port}", f"127.0.0.1:{self.replica_port}"
        self._data_server("master", self.master_port)
        self._data_server(
            "replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port)
        )

        def in_sync():
            link = _info_field(self._client(replica), "replication", "master_link_status")
            return link == "up"

        wait_until(in_sync, timeout=30, what="the replica to sync with the master")
        # The sentinel's own password and TLS; `masterauth` means nothing to a sentinel.
        lines = [
            f"{name} {value}"
            for name, value in self.sentinel_access.directives(self.sentinel_port)
            if name != "masterauth"
        ]
        lines += [
            "bind 127.0.0.1",
            f"dir {self.workdir}",
            f"sentinel monitor {self.service} 127.0.0.1 {self.master_port} 1",
            f"sentinel down-after-milliseconds {self.service} 1000",
            f"sentinel failover-timeout {self.service} 5000",
        ]
        if self.access.password:
            lines.append(f"sentinel auth-pass {self.service} {self.access.password}")
        conf = self.workdir / "sentinel.conf"  # the sentinel rewrites it: a file of its own
        conf.write_text("".join(f"{line}\n" for line in lines))
        self.servers.start("sentinel", str(conf), "--sentinel")
        self.servers.wait_for_ping("sentinel", self._sentinel())
        # Refresh INFO every 100 ms and make a demoted master a replica after 0.8 s rather
        # than after 10 s and 8 s (sentinel.c's defaults). Redis before 7.0 has no SENTINEL
        # DEBUG: its failover is slower, still within failover()'s deadline.
        with contextlib.suppress(redis.ResponseError):
            self._sentinel().execute_command(
                "SENTINEL", "DEBUG", "INFO-PERIOD", 100, "PUBLISH-PERIOD", 200
            )
        wait_until(
            lambda: self.master_address() == master,
            timeout=30,
            what=f"the sentinel to name {master} as the master",
        )
        wait_until(
            lambda: self._replica_ready(replica),
            timeout=30,
            what=f"the sentinel to see {replica} as a replica in sync",
        )

    def _replica_ready(self, address):
        """True when the sentinel knows the replica at `address` and its link is up: the
        replica SENTINEL FAILOVER would promote."""
        for replica in self._sentinel().sentinel_slaves(self.service):
            if replica["name"] == address:
                return replica["flags"] == "slave" and replica["master-link-status"] == "ok"
        return False

    def failover(self):
        """Make the sentinel fail over to the replica; return the new master's address once
        the sentinel names it, it says role:master and the old master says role:slave, and
        the sentinel sees the old master as a replica in sync (ready for the next failover)."""
        old = self.master_address()
        new = next(
            address
            for address in (f"127.0.0.1:{self.master_port}", f"127.0.0.1:{self.replica_port}")
            if address != old
        )
        self._sentinel().execute_command("SENTINEL", "FAILOVER", self.service)

        def swapped():
            return (
                self.master_address() == new
                and _info_field(self._client(new), "replication", "role") == "master"
                and _info_field(self._client(old), "replication", "role") == "slave"
            )

        deadline = time.monotonic() + 30
        wait_until(swapped, timeout=30, what=f"the sentinel to fail over from {old} to {new}")
        wait_until(
            lambda: self._replica_ready(old),
            timeout=max(deadline - time.monotonic(), 0),
            what=f"the sentinel to see {old} as a replica in sync after the failover",
        )
        return new

    def _client(self, address):
        if address not in self.clients:
            host, port = _split_address(address)
            access = self.sentinel_access if address == self.sentinels else self.access
            self.clients[address] = redis.Redis(
                host=host, port=port, socket_timeout=10, **access.client_options()
            )
        return self.clients[address]

    def _sentinel(self):
        return self._client(self.sentinels)

    def stop(self):
        """Stop the sentinel, the master and the replica. Safe to call twice."""
        clients, self.clients = self.clients, {}
        for client in clients.values():
            client.close()
        self.servers.stop()
