"""The Redis connection every process shares: built from the settings, checked at start.

Three ways to reach Redis, chosen by the environment:

- one Redis at `REDIS_URL` (`redis://` or `rediss://`);
- a Redis Cluster (`REDIS_CLUSTER=true`), discovered from the node `REDIS_URL` names;
- the primary that Sentinel names (`REDIS_SENTINELS`, `REDIS_SENTINEL_SERVICE`), with the
  credentials, database and TLS of `REDIS_URL` (its host and port are not used).

Nothing connects before the first command: `flask db upgrade` and the other commands that
need only the database never wait on Redis.
"""

import contextlib
import threading

import redis
from redis._parsers import Encoder
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.connection import parse_url
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel

#: What any Redis command may raise: a cluster client that cannot reach a single node
#: raises `RedisClusterException`, which is not a `RedisError`.
REDIS_ERRORS = (redis.RedisError, RedisClusterException)


def _options(config, decode_responses, timeout):
    timeout = config.get("REDIS_SOCKET_TIMEOUT", 5) if timeout is None else timeout
    return {
        # Bytes that are not UTF-8 decode with replacement characters instead of raising:
        # an entry any producer wrote must never crash the process that reads it.
        "decode_responses": decode_responses,
        "encoding_errors": "replace",
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
    }


def connect(config, *, decode_responses=True, timeout=None, **extra):
    """Return a Redis client for the configured mode, never waiting forever.

    `decode_responses=False` is for callers that store bytes (the admin sessions,
    serialised by Flask-Session); `timeout` overrides `REDIS_SOCKET_TIMEOUT` (seconds).
    """
    options = {**_options(config, decode_responses, timeout), **extra}
    if config.get("REDIS_SENTINELS"):
        return _primary_of(config, options)
    if config.get("REDIS_CLUSTER"):
        return LazyCluster(config["REDIS_URL"], options)
    return redis.Redis.from_url(config["REDIS_URL"], **options)


def _primary_of(config, options):
    url = parse_url(config["REDIS_URL"])
    # The sentinels say where the primary is; everything else REDIS_URL says (credentials,
    # database, TLS and its `ssl_*` query options, such as the CA) holds for it.
    for name in ("host", "port", "path"):
        url.pop(name, None)
    tls = url.pop("connection_class", None) is redis.SSLConnection
    sentinel_options = {
        "socket_timeout": options["socket_timeout"],
        "socket_connect_timeout": options["socket_connect_timeout"],
        # Never retry a sentinel: Sentinel asks the next one itself. redis-py's default
        # retries one that is down for seconds, on every lookup of the primary.
        "retry": Retry(NoBackoff(), 0),
    }
    if config.get("REDIS_SENTINEL_PASSWORD"):
        sentinel_options["password"] = config["REDIS_SENTINEL_PASSWORD"]
    if tls:
        # The sentinels speak TLS as the primary does, checked against the same CA.
        sentinel_options.update(
            {name: value for name, value in url.items() if name.startswith("ssl_")}, ssl=True
        )
    # What the URL says wins over our defaults, as `Redis.from_url` has it.
    primary_options = {**options, **url, **({"ssl": True} if tls else {})}
    sentinel = Sentinel(
        config["REDIS_SENTINELS"], sentinel_kwargs=sentinel_options, **primary_options
    )
    return sentinel.master_for(config["REDIS_SENTINEL_SERVICE"])


class LazyCluster:
    """A `RedisCluster` built at its first use.

    redis-py's cluster client reads the slot map from a node when it is built, so built
    eagerly it would make every process, even `flask db upgrade`, wait on Redis. A
    failed build raises `redis.ConnectionError` (naming the node tried) and is tried
    again by the next command.
    """

    def __init__(self, url, options):
        self.url = url
        self.options = options
        self._client = None
        self._lock = threading.Lock()

    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = RedisCluster.from_url(self.url, **self.options)
                    except RedisClusterException as error:
                        raise redis.ConnectionError(
                            f"no Redis Cluster node answers at {address_of(self.url)}: {error}"
                        ) from None
        return self._client

    def get_encoder(self):
        # What a Lua `Script` asks for when it is registered: known without a node.
        return Encoder("utf-8", self.options["encoding_errors"], self.options["decode_responses"])

    def register_script(self, script):
        return Script(self, script)

    def __getattr__(self, name):
        return getattr(self.client, name)


def reconnect(client):
    """Drop a client's connections after a failover or a resharding: the next command
    asks the sentinels or the cluster again where the primary of its keys is."""
    if isinstance(client, LazyCluster):
        if client._client is not None:
            # Failing, it leaves the map to the next command, which reads it again.
            with contextlib.suppress(*REDIS_ERRORS):
                client._client.nodes_manager.initialize()
        return
    pool = client.connection_pool
    if hasattr(pool, "reset") and hasattr(pool, "service_name"):
        pool.reset()  # a Sentinel pool: forget the primary it found
    pool.disconnect()


def address_of(url):
    """Return the `host:port` a Redis URL names, for messages."""
    parsed = parse_url(url)
    return f"{parsed.get('host', 'localhost')}:{parsed.get('port', 6379)}"


def describe(config):
    """Say where the configured Redis is, for messages: the nodes or sentinels tried."""
    if config.get("REDIS_SENTINELS"):
        sentinels = ", ".join(f"{host}:{port}" for host, port in config["REDIS_SENTINELS"])
        return f"Redis primary {config['REDIS_SENTINEL_SERVICE']!r} via sentinels {sentinels}"
    if config.get("REDIS_CLUSTER"):
        return f"Redis Cluster via {address_of(config['REDIS_URL'])}"
    return f"Redis at {address_of(config['REDIS_URL'])}"


def hosts(config):
    """The host names the configured Redis is reached through (to check they resolve)."""
    if config.get("REDIS_SENTINELS"):
        return [host for host, _ in config["REDIS_SENTINELS"]]
    return [parse_url(config["REDIS_URL"]).get("host")]


def is_cluster(client):
    return isinstance(client, LazyCluster)
