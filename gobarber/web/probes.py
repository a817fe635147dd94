"""`GET /health` for load balancers, `GET /health/mail` for whoever watches the mail, and
`GET /metrics` for Prometheus.

A failing check names hosts and ports in its error (`Error 111 connecting to
10.0.0.5:6379`); those are shown to loopback callers and to `Authorization: Bearer
<HEALTH_TOKEN>` only, anyone else reads `unreachable`.
"""

import hmac
import ipaddress
import smtplib
import threading
import time
import weakref

from flask import Blueprint, current_app, request
from redis import exceptions as redis_errors
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gobarber import metrics
from gobarber.api.contract import JSON_ERROR, documented, json_content
from gobarber.extensions import db, mail_queue
from gobarber.mail.heartbeats import Heartbeats
from gobarber.mail.metrics import MailCollector
from gobarber.redis_connection import REDIS_ERRORS

bp = Blueprint("probes", __name__)

HEALTH_TIMEOUT_S = 2.0
# However often /health/mail is asked, each process talks to the SMTP server at most
# once per this many seconds, one check at a time.
SMTP_CHECK_TTL_S = 30.0
HIDDEN_ERROR = "unreachable"

_smtp_lock = threading.Lock()
_smtp_results = weakref.WeakKeyDictionary()  # app -> (result, monotonic expiry)

# redis-py takes the code off the error replies it turns into these exceptions; it is
# what names the failure (a `MovedError` alone reads `3999 10.0.0.7:6379`).
REPLY_CODES = {
    redis_errors.ReadOnlyError: "READONLY",
    redis_errors.MovedError: "MOVED",
    redis_errors.AskError: "ASK",
    redis_errors.TryAgainError: "TRYAGAIN",
    redis_errors.ClusterDownError: "CLUSTERDOWN",
    redis_errors.MasterDownError: "MASTERDOWN",
    redis_errors.BusyLoadingError: "LOADING",
}


# What the probes answer: each check by name, and the names of those failing.
_CHECK = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "latency_ms": {"type": "number"},
        "error": {
            "type": "string",
            "description": f"`{HIDDEN_ERROR}` unless you may see addresses",
        },
    },
    "required": ["ok"],
}
_CHECKS = {"type": "object", "additionalProperties": _CHECK}
HEALTHY = {
    "type": "object",
    "properties": {"status": {"const": "ok"}, "checks": _CHECKS},
    "required": ["status", "checks"],
    "additionalProperties": False,
}
UNHEALTHY = {
    "type": "object",
    "properties": {
        "status": {"const": "unavailable"},
        "checks": _CHECKS,
        "failing": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["status", "checks", "failing"],
    "additionalProperties": False,
}
# Anyone may ask; loopback callers and the holder of HEALTH_TOKEN also read errors' texts.
HEALTH_TOKEN_OPTIONAL = [{}, {"healthToken": []}]


def _failure(error):
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    code = next((REPLY_CODES[c] for c in type(error).__mro__ if c in REPLY_CODES), None)
    if code is not None:
        reason = f"{code} {reason}"
    return {"ok": False, "error": reason[:200]}


def _timed(check):
    started = time.perf_counter()
    try:
        check()
    except (SQLAlchemyError, *REDIS_ERRORS, smtplib.SMTPException, OSError) as error:
        return _failure(error)
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _may_see_addresses():
    try:
        if ipaddress.ip_address(request.remote_addr or "").is_loopback:
            return True
    except ValueError:
        pass
    token = current_app.config["HEALTH_TOKEN"]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


def _shown(result):
    """Return a check's result as this caller may see it: without the error's text unless
    they may see internal addresses."""
    if result["ok"] or _may_see_addresses():
        return result
    return {**result, "error": HIDDEN_ERROR}


def _answer(checks):
    failing = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "unavailable" if failing else "ok", "checks": checks}
    if failing:
        body["failing"] = failing
    return body, 503 if failing else 200


def _database():
    db.session.execute(text("SELECT 1"))
    db.session.rollback()


def _redis():
    # A write where the mail streams live, not a PING: a replica, a node that does not
    # own a shard's slot and a cluster that is down all answer PING.
    mail_queue.get().check_writable()


def _smtp():
    config = current_app.config
    smtp_class = smtplib.SMTP_SSL if config["MAIL_USE_SSL"] else smtplib.SMTP
    timeout = min(config["MAIL_TIMEOUT"], HEALTH_TIMEOUT_S)
    with smtp_class(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=timeout) as server:
        code, _ = server.noop()
        if code != 250:
            raise smtplib.SMTPResponseException(code, "NOOP refused")


def _smtp_cached():
    """The SMTP check's result, from this process's last check if it is recent enough."""
    app = current_app._get_current_object()
    with _smtp_lock:
        result, expires = _smtp_results.get(app, (None, 0.0))
        if result is None or time.monotonic() >= expires:
            result = _timed(_smtp)
            _smtp_results[app] = (result, time.monotonic() + SMTP_CHECK_TTL_S)
        return result


def _workers():
    names = Heartbeats(current_app).alive()
    if not names:
        return {"ok": False, "error": "no live worker", "count": 0, "alive": []}
    return {"ok": True, "count": len(names), "alive": names}


def _pending():
    limit = current_app.config["MAIL_HEALTH_MAX_PENDING_AGE"]
    ages = {state["priority"]: state["oldest_pending_age_s"] for state in mail_queue.get().state()}
    oldest = max((age for age in ages.values() if age is not None), default=None)
    if oldest is not None and oldest >= limit:
        error = f"oldest pending {oldest:.0f} s"
        return {"ok": False, "error": error, "oldest_age_s": ages, "max_age_s": limit}
    return {"ok": True, "oldest_age_s": ages, "max_age_s": limit}


@bp.get("/health")
@documented(
    summary="Readiness of this web process: the database answers and Redis takes writes",
    security=HEALTH_TOKEN_OPTIONAL,
    responses={
        200: ("Ready: every check passed", json_content(HEALTHY)),
        503: ("Not ready: the checks, and which failed", json_content(UNHEALTHY)),
    },
)
def health():
    """The web process's readiness: 200 when the database answers and Redis takes writes
    in every shard's slot of the mail queue, else 503 naming what does not. Mail is
    `/health/mail`'s business: a load balancer must not pull a web process because the
    SMTP server or the workers are down."""
    return _answer({"database": _shown(_timed(_database)), "redis": _shown(_timed(_redis))})


@bp.get("/health/mail")
@documented(
    summary="The mail's health: a live worker, no mail pending too long, the SMTP server",
    security=HEALTH_TOKEN_OPTIONAL,
    responses={
        200: ("Mail goes out: every check passed", json_content(HEALTHY)),
        503: (
            "Something holds the mail back: the checks, and which failed",
            json_content(UNHEALTHY),
        ),
    },
)
def mail_health():
    """200 when a mail worker is alive, no entry has been pending too long and the SMTP
    server answers; else 503 naming what is wrong (`redis` when it cannot tell)."""
    try:
        checks = {"workers": _workers(), "pending": _pending()}
    except REDIS_ERRORS as error:
        checks = {"redis": _shown(_failure(error))}
    checks["smtp"] = _shown(_smtp_cached())
    return _answer(checks)


@bp.get("/metrics")
@documented(
    summary="Request and mail queue metrics, for Prometheus",
    responses={
        200: (
            "Prometheus's text exposition format, version 0.0.4",
            {"text/plain": {"type": "string"}},
        ),
        503: ("Redis, which holds the counts, does not answer", JSON_ERROR),
    },
)
def scrape():
    # This process's own requests first, so one process sees what it just served; a
    # hung Redis costs the scrape its socket timeout, then the 503 below.
    metrics.publish_pending()
    try:
        payload = metrics.exposition(MailCollector(mail_queue.get(), Heartbeats(current_app)))
    except REDIS_ERRORS as error:
        return {"error": f"metrics unavailable: Redis does not answer ({error})"}, 503
    return payload, 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}


def count_requests(app):
    """Count every response by route template, method and status, without waiting on Redis."""

    @app.after_request
    def _count(response):
        if request.endpoint != "probes.scrape":
            route = request.url_rule.rule if request.url_rule else "<unmatched>"
            metrics.count_request(route, request.method, response.status_code)
        return response
