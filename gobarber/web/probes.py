"""`GET /health` for load balancers and `GET /metrics` for Prometheus."""

import smtplib
import time

import redis
from flask import Blueprint, current_app, request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gobarber import metrics
from gobarber.extensions import db, mail_queue, redis_store
from gobarber.mail.metrics import MailCollector

bp = Blueprint("probes", __name__)

HEALTH_TIMEOUT_S = 2.0


def _timed(check):
    started = time.perf_counter()
    try:
        check()
    except (SQLAlchemyError, redis.RedisError, smtplib.SMTPException, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return {"ok": False, "error": reason[:200]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _database():
    db.session.execute(text("SELECT 1"))
    db.session.rollback()


def _redis():
    redis_store.get().ping()


def _smtp():
    config = current_app.config
    smtp_class = smtplib.SMTP_SSL if config["MAIL_USE_SSL"] else smtplib.SMTP
    timeout = min(config["MAIL_TIMEOUT"], HEALTH_TIMEOUT_S)
    with smtp_class(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=timeout) as server:
        code, _ = server.noop()
        if code != 250:
            raise smtplib.SMTPResponseException(code, "NOOP refused")


@bp.get("/health")
def health():
    """200 when the database, Redis and the SMTP server answer; 503 naming what does not."""
    checks = {"database": _timed(_database), "redis": _timed(_redis), "smtp": _timed(_smtp)}
    failing = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "unavailable" if failing else "ok", "checks": checks}
    if failing:
        body["failing"] = failing
    return body, 503 if failing else 200


@bp.get("/metrics")
def scrape():
    try:
        payload = metrics.exposition(MailCollector(mail_queue.get()))
    except redis.RedisError as error:
        return {"error": f"metrics unavailable: Redis does not answer ({error})"}, 503
    return payload, 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}


def count_requests(app):
    """Count every response by route template, method and status."""

    @app.after_request
    def _count(response):
        if request.endpoint != "probes.scrape":
            route = request.url_rule.rule if request.url_rule else "<unmatched>"
            metrics.count_request(route, request.method, response.status_code)
        return response
