"""Throttles on Redis, shared by every web process (Flask-Limiter).

Every limit is in `THROTTLES`, applied by endpoint name once the blueprints are
registered, so no view knows of them. Counts live in Redis under
`{MAIL_STREAM_PREFIX}:throttle`, so every gunicorn worker on every host sees the same
ones. Every route but the probes also shares one count per client address,
`RATE_LIMIT_DEFAULT` (Flask-Limiter's application limit).

The counts go through a client of our own (`connect`), so the throttles reach Redis as
everything else does: one Redis, a Redis Cluster or the primary Sentinel names, with
REDIS_URL's password and TLS. `limits` builds no client of its own (`ClientStorage`).

Redis down or hung: Flask-Limiter warns once and counts in this process's memory until
Redis answers again (it looks every few seconds), so requests answer as usual; no
request waits more than `STORAGE_TIMEOUT` for it.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from flask import current_app, render_template, request, session
from flask_limiter import RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits.storage import RedisStorage
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException

from gobarber.errors import TooManyAttempts
from gobarber.extensions import limiter
from gobarber.redis_connection import REDIS_ERRORS, connect

log = logging.getLogger(__name__)

# Seconds a request may wait on the limiter's Redis: a local one answers in well under a
# millisecond, and past the first timeout the process counts in memory for a while.
STORAGE_TIMEOUT = 0.05
# Routes a monitor polls: never refused.
UNTHROTTLED = ("probes.health", "probes.mail_health", "probes.scrape")
SIGN_IN = ("sessions.sign_in", "admin.login", "pages.sign_in")
# HTML forms: the account is the form's `email`, and a refusal is a page, not JSON.
PAGES = ("admin.login", "pages.sign_in", "pages.sign_up")


def signing_in_email():
    """Return the account a sign-in is for: the JSON body's or the form's `email`."""
    # Never raise here: Flask-Limiter takes any error in a key function for Redis down.
    try:
        if request.endpoint in PAGES:
            email = request.form.get("email")
        else:
            body = request.get_json(force=True, silent=True)
            email = body.get("email") if isinstance(body, dict) else None
    except (HTTPException, RecursionError):  # an oversized or absurdly nested body
        email = None
    # The view answers 400 to a body without an email; its attempts share one count.
    email = email.strip().lower()[:320] if isinstance(email, str) else ""
    return f"email:{email}"


def signed_in_account():
    """Return the account of the bearer token (its signature checked, no query) or of the
    pages' session, else the client address: the view refuses such a request anyway."""
    if session.get("user_id"):
        return f"user:{int(session['user_id'])}"
    words = request.headers.get("Authorization", "").split()
    if len(words) >= 2:
        try:
            payload = jwt.decode(words[1], current_app.config["SECRET_KEY"], algorithms=["HS256"])
            return f"user:{int(payload['id'])}"
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            pass
    return get_remote_address()


def refused(response):
    """Tell whether a sign-in failed: the only answers its throttles count."""
    return response.status_code == 401


@dataclass(frozen=True)
class Throttle:
    """One limit: its setting, the endpoints sharing its count, whom it counts by."""

    setting: str
    scope: str
    endpoints: tuple[str, ...]
    methods: tuple[str, ...]
    key: Callable[[], str] = get_remote_address
    # Count only refused attempts (a sign-in that fails), not every request.
    failures_only: bool = False
    # An accepted attempt wipes the count (the owner signed in).
    success_forgets: bool = False


THROTTLES = (
    Throttle(
        "RATE_LIMIT_SIGN_IN_ACCOUNT",
        "sign-in-account",
        SIGN_IN,
        ("POST",),
        key=signing_in_email,
        failures_only=True,
        success_forgets=True,
    ),
    Throttle(
        "RATE_LIMIT_SIGN_IN_ADDRESS", "sign-in-address", SIGN_IN, ("POST",), failures_only=True
    ),
    Throttle("RATE_LIMIT_SIGN_UP", "sign-up", ("users.sign_up", "pages.sign_up"), ("POST",)),
    # The shop's pages share each count with their API twin: one account, one limit.
    Throttle(
        "RATE_LIMIT_BOOKING",
        "booking",
        ("appointments.create", "pages.book"),
        ("POST",),
        signed_in_account,
    ),
    Throttle(
        "RATE_LIMIT_CANCEL",
        "cancel",
        ("appointments.cancel", "pages.cancel"),
        ("DELETE", "POST"),
        signed_in_account,
    ),
    Throttle(
        "RATE_LIMIT_UPLOAD",
        "upload",
        ("files.upload", "pages.avatar"),
        ("POST",),
        signed_in_account,
    ),
)
FORGOTTEN_ON_SUCCESS = {throttle.scope for throttle in THROTTLES if throttle.success_forgets}


class ClientStorage(RedisStorage):
    """`limits`' Redis storage on a client handed to it (`client=`), of any mode.

    `limits` builds its own client from a URL otherwise: `redis://` reaches one node (on
    a cluster, the keys of other nodes' slots fail), `redis+cluster://` reads the slot
    map as the app starts (so `flask db upgrade` would wait on Redis), and
    `redis+sentinel://` needs REDIS_URL's credentials and TLS said again, and reads the
    counts from replicas. Our client is the one every mode's settings already build.
    """

    STORAGE_SCHEME = ["gobarber+redis"]

    def __init__(self, uri, *, client, key_prefix=RedisStorage.PREFIX, wrap_exceptions=False):
        # RedisStorage.__init__ would build a client: set up what it sets, with ours.
        super(RedisStorage, self).__init__(uri, wrap_exceptions=wrap_exceptions)
        self.key_prefix = key_prefix
        self.target_server = "redis"
        self.storage = client
        # Registering the Lua scripts only hashes them: nothing connects yet.
        self.initialize_storage(uri)

    @property
    def base_exceptions(self):
        # A cluster client that reaches no node raises RedisClusterException, which is
        # not a RedisError.
        return REDIS_ERRORS


def storage_client(config):
    """The limiter's own client: every request waits at most `STORAGE_TIMEOUT` on it."""
    return connect(
        config,
        # `limits` expects replies as redis-py gives them by default.
        decode_responses=False,
        timeout=STORAGE_TIMEOUT,
        # One retry, at once: a pooled connection the server closed is not an outage.
        retry=Retry(NoBackoff(), 1),
    )


def init_app(app):
    """Configure the limiter from our settings and put every throttle on its endpoints.

    Call after the blueprints are registered: the throttles wrap their views.
    """
    config = app.config
    config.update(
        RATELIMIT_ENABLED=config["RATE_LIMITS"],
        RATELIMIT_STORAGE_URI="gobarber+redis://",
        RATELIMIT_STORAGE_OPTIONS={
            "client": storage_client(config),
            # A hash tag like the mail streams': the tests' cleanup finds these keys too.
            "key_prefix": "{" + config["MAIL_STREAM_PREFIX"] + "}:throttle",
        },
        # Exact counts: a fixed window would let 5 failures at its end and 5 more at the
        # start of the next one through in a second.
        RATELIMIT_STRATEGY="moving-window",
        # Fail open: Redis down, count in memory (one warning); anything else the limiter
        # trips on is logged, never a 500.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        # One count per address across every route, not one per route: a client
        # spreading its requests over the routes gets no more.
        RATELIMIT_APPLICATION=config["RATE_LIMIT_DEFAULT"],
    )
    limiter.init_app(app)
    if not config["RATE_LIMITS"]:
        return
    bound = limiter.get(app)
    for endpoint in UNTHROTTLED:
        bound.exempt(app.view_functions[endpoint])
    for throttle in THROTTLES:
        limit = bound.shared_limit(
            config[throttle.setting],
            scope=throttle.scope,
            key_func=throttle.key,
            methods=list(throttle.methods),
            deduct_when=refused if throttle.failures_only else None,
            override_defaults=False,
        )
        for endpoint in throttle.endpoints:
            app.view_functions[endpoint] = limit(app.view_functions[endpoint])
    app.register_error_handler(RateLimitExceeded, too_many_attempts)
    app.after_request(forget_failures)


def retry_after():
    """Return the whole seconds until the limit this request broke lets one more through."""
    breached = limiter.get().current_limit
    try:
        reset_at = breached.window.reset_time
    except REDIS_ERRORS:  # gone since it refused: the longest wait the limit can mean
        reset_at = time.time() + breached.limit.get_expiry()
    return max(1, math.ceil(reset_at - time.time()))


def too_many_attempts(breach):
    """Answer a broken limit: 429 with `Retry-After`, as JSON or as the page asked for."""
    seconds = retry_after()
    if request.endpoint == "admin.login":
        page = render_template("admin/login.html", error=TooManyAttempts.message)
        return page, 429, {"Retry-After": str(seconds)}
    # The app's own handler renders the error family's JSON (a page on the shop's pages)
    # and its Retry-After.
    return current_app.handle_user_exception(TooManyAttempts(retry_after=seconds))


def forget_failures(response):
    """Wipe an account's failed sign-ins once its owner signs in."""
    if response.status_code >= 400:
        return response
    bound = limiter.get()
    for counted in bound.current_limits:
        if counted.request_args[-1] in FORGOTTEN_ON_SUCCESS:
            try:
                bound.limiter.clear(counted.limit, *counted.request_args)
            except REDIS_ERRORS as error:
                log.warning("throttle: could not reset a sign-in count: %s", error)
    return response
