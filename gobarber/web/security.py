"""Response headers, CORS's reach, and the pages' sessions and CSRF.

The pages (the shop's under `/app`, the operators' under `/admin`) sign in with a cookie
whose session lives in Redis (Flask-Session); the JSON API has bearer tokens, so it
never opens a session, never gets a CSRF check and never reads Redis for either.

Not Flask-Talisman: it would redirect the JSON API to HTTPS (TLS ends at the proxy in
front of us) and put one Content-Security-Policy on every answer, where only a few pages
are HTML (the admin pages, `/` and `/docs`), each with a policy of its own. The few
headers below are all we need.
"""

import logging
import re
import secrets
from urllib.parse import urlsplit

from flask import g, render_template, request
from flask_session.base import ServerSideSessionInterface
from flask_session.redis import RedisSessionInterface

from gobarber.extensions import csrf, session_redis
from gobarber.redis_connection import REDIS_ERRORS

log = logging.getLogger(__name__)

ADMIN_PATH = "/admin"
PAGES_PATH = "/app"
# Every path but the pages': browsers may call the API from `CORS_ORIGINS`.
API_CORS_RESOURCES = {re.compile(rf"^(?!({ADMIN_PATH}|{PAGES_PATH})(/|$))"): {}}
HSTS = "max-age=31536000; includeSubDomains"


def _under(path, prefix):
    return path == prefix or path.startswith(prefix + "/")


def is_admin_path(path):
    """Tell whether `path` is one of the admin pages'."""
    return _under(path, ADMIN_PATH)


def is_page_path(path):
    """Tell whether `path` is a page's, the shop's or the admin's: they have sessions."""
    return _under(path, PAGES_PATH) or _under(path, ADMIN_PATH)


def csp_nonce():
    """Return this request's nonce for the admin pages' inline `<style>`."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def unavailable_page():
    """The admin page's answer when its sessions' Redis does not answer."""
    return render_template("admin/unavailable.html"), 503


class PageSessions(RedisSessionInterface):
    """Flask-Session's Redis sessions, for the pages only.

    Anywhere else the session is Flask's null session, which Flask neither reads nor
    saves. On the pages a Redis that does not answer makes it the null session too
    (their blueprints answer 503 for it), and a save that fails turns the answer into
    the same 503 page.
    """

    def __init__(self, app, *, client, **options):
        # Not Flask-Session's own __init__: it takes any client but a `redis.Redis` (a
        # cluster's) for none, and would keep the sessions in a Redis on localhost.
        ServerSideSessionInterface.__init__(self, app, **options)
        self.client = client

    def open_session(self, app, request):
        if not is_page_path(request.path):
            return None
        try:
            return super().open_session(app, request)
        except REDIS_ERRORS as error:
            log.warning("page session not read, Redis does not answer: %s", error)
            return None

    def save_session(self, app, session, response):
        try:
            super().save_session(app, session, response)
        except REDIS_ERRORS as error:
            log.warning("page session not saved, Redis does not answer: %s", error)
            # Saving is the last step of a request, after every handler; the answer
            # already built (a page, a redirect after signing in) would be a lie.
            body, status = unavailable_page()
            response.set_data(body)
            response.status_code = status
            response.mimetype = "text/html"
            response.headers.pop("Location", None)


def _configure_sessions(app):
    config = app.config
    # The shop's pages and the admin's share one session: one sign-in for both.
    config["SESSION_COOKIE_PATH"] = "/"
    config["SESSION_COOKIE_HTTPONLY"] = True
    config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    config["SESSION_COOKIE_SECURE"] = config["APP_ENV"] == "production"
    # The session bounds the token's life; a page left open an hour still submits.
    config["WTF_CSRF_TIME_LIMIT"] = None
    # Only the pages' blueprints ask for the check (`csrf.protect()` before their POSTs).
    config["WTF_CSRF_CHECK_DEFAULT"] = False
    session_redis.init_app(app)
    # What Flask-Session builds for SESSION_TYPE="redis", kept to the pages.
    app.session_interface = PageSessions(
        app,
        client=session_redis.get(app),
        # One hash tag with the mail keys, so each app (and each test) has its own.
        key_prefix="{" + config["MAIL_STREAM_PREFIX"] + "}:session:",
        permanent=True,
    )
    csrf.init_app(app)
    app.jinja_env.globals["csp_nonce"] = csp_nonce


def _admin_policy():
    # The only inline content is base.html's <style>, allowed by this request's nonce.
    style = f" style-src 'nonce-{g.csp_nonce}';" if "csp_nonce" in g else ""
    return f"default-src 'self';{style} frame-ancestors 'none'; form-action 'self'; base-uri 'none'"


def _home_policy():
    # `/`: links and a <style> allowed by this request's nonce; no script, no image.
    return (
        f"default-src 'none'; style-src 'nonce-{csp_nonce()}'; "
        "frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
    )


def _docs_policy(app_url):
    """`/docs`: Swagger UI from this server's files, started by one of them, not inline."""
    # Its stylesheet draws icons from data: URLs and it shows an image answer from a
    # blob: URL. "Try it out" calls the document's server, APP_URL: this server, or
    # another origin that CORS lets it read.
    api = urlsplit(app_url)
    return (
        "default-src 'self'; img-src 'self' data: blob:; "
        f"connect-src 'self' {api.scheme}://{api.netloc}; object-src 'none'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )


def _pages_policy():
    # The shop's pages: their own stylesheet and scripts, nothing inline; images from
    # here, and an avatar's preview from a blob: URL before it is uploaded.
    return (
        "default-src 'self'; img-src 'self' blob:; object-src 'none'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )


def _install_headers(app):
    production = app.config["APP_ENV"] == "production"
    page_policies = {
        "home.index": _home_policy,
        "home.docs": lambda: _docs_policy(app.config["APP_URL"]),
    }

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        if production:
            headers["Strict-Transport-Security"] = HSTS
        if is_admin_path(request.path):
            headers["X-Frame-Options"] = "DENY"
            headers["Content-Security-Policy"] = _admin_policy()
            headers["Cache-Control"] = "no-store"
        elif is_page_path(request.path):
            headers["X-Frame-Options"] = "DENY"
            headers["Content-Security-Policy"] = _pages_policy()
            headers.setdefault("Cache-Control", "no-store")
        elif request.endpoint in page_policies:
            headers["Content-Security-Policy"] = page_policies[request.endpoint]()
        elif request.endpoint == "sessions.sign_in":
            headers["Cache-Control"] = "no-store"  # the answer holds a token
        return response


def init_app(app):
    """Install the headers, the pages' server-side sessions and CSRF protection."""
    _configure_sessions(app)
    _install_headers(app)
