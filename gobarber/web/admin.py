"""The operator's queue page: `/admin/queue`, server-rendered, for admin users only.

Signing in uses a session cookie (the API's bearer tokens are for the clients), its
session kept in Redis (gobarber/web/security.py); every form here, the sign-in form
included, carries a CSRF token. Every action here is also a `flask queue` command.
"""

from functools import wraps

import redis
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisClusterException

from gobarber.api.contract import HTML_PAGE, documented
from gobarber.errors import GobarberError, Unauthorized
from gobarber.extensions import csrf, db, mail_queue
from gobarber.mail import operations
from gobarber.models import User
from gobarber.services.users import sign_in
from gobarber.web.security import ADMIN_PATH, unavailable_page

bp = Blueprint("admin", __name__, url_prefix=ADMIN_PATH)

REFRESH_SECONDS = 5

# For /openapi.json: these are pages for a person, not for the API's clients.
TAG = "operator pages"
SIGNED_IN = [{"pageSession": []}]
STALE_FORM = ("The form's CSRF token is missing or stale: a page saying so", HTML_PAGE)
UNAVAILABLE = ("Redis, where the sessions live, does not answer: a page saying so", HTML_PAGE)
NOT_AN_ADMIN = ("Signed in, but not an admin: a page saying so", HTML_PAGE)


def _form(*fields, required=("csrf_token",)):
    """Return the JSON schema of a form of text `fields`, the CSRF token among them."""
    properties = {name: {"type": "string"} for name in ("csrf_token", *fields)}
    return {"type": "object", "properties": properties, "required": list(required)}


@bp.before_request
def _session_and_form_token():
    # The null session is what the admin pages get when Redis did not answer.
    if current_app.session_interface.is_null_session(session):
        return unavailable_page()
    csrf.protect()  # POST and the like only; a missing or wrong token raises CSRFError
    return None


@bp.errorhandler(CSRFError)
def _stale_form(error):
    return render_template("admin/refused.html", stale=True), 400


@bp.errorhandler(redis.RedisError)
@bp.errorhandler(RedisClusterException)
def _redis_down(error):
    return unavailable_page()


def admin_required(view):
    """Send strangers to the sign-in form and refuse users who are not admins.

    A session signed in before the user's password last changed is over: the change
    raised the user's token version past the one the session recorded.
    """

    @wraps(view)
    def guarded(*args, **kwargs):
        user = db.session.get(User, session.get("user_id") or 0)
        if user is None or session.get("token_version") != user.token_version:
            if "user_id" in session:
                session.clear()
            return redirect(url_for("admin.login", next=request.path))
        if not user.admin:
            return render_template("admin/refused.html", user=user), 403
        return view(user, *args, **kwargs)

    return guarded


@bp.route("/login", methods=["GET", "POST"])
@documented(
    method="GET",
    tag=TAG,
    summary="The operators' sign-in form",
    responses={200: ("The form", HTML_PAGE), 503: UNAVAILABLE},
)
@documented(
    method="POST",
    tag=TAG,
    summary="Sign in to the operator pages with an email and password",
    form=_form("email", "password"),
    responses={
        302: "Signed in: to the queue page, with the session cookie",
        400: STALE_FORM,
        401: ("The form again, saying what was wrong", HTML_PAGE),
        429: ("Too many failed sign-ins: the form again, and Retry-After", HTML_PAGE),
        503: UNAVAILABLE,
    },
)
def login():
    error = None
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        try:
            # No user's email holds a control character, and PostgreSQL refuses a NUL.
            if not email.isprintable():
                raise Unauthorized("User not found")
            user, _ = sign_in(email=email, password=request.form.get("password", ""))
        except GobarberError as failure:
            error = failure.message
        else:
            session.clear()
            session["user_id"] = user.id
            session["token_version"] = user.token_version
            # A new id: whoever planted or saw the signed-out session's id gains nothing.
            current_app.session_interface.regenerate(session)
            return redirect(url_for("admin.queue_page"))
    return render_template("admin/login.html", error=error), 401 if error else 200


@bp.post("/logout")
@documented(
    tag=TAG,
    summary="Sign out of the operator pages",
    form=_form(),
    responses={302: "To the sign-in form", 400: STALE_FORM, 503: UNAVAILABLE},
)
def logout():
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/queue")
@documented(
    tag=TAG,
    summary="The mail queue: its streams, what is pending and the dead letters",
    security=SIGNED_IN,
    responses={
        200: ("The page; it reloads itself every few seconds", HTML_PAGE),
        302: "Not signed in: to the sign-in form",
        403: NOT_AN_ADMIN,
        503: UNAVAILABLE,
    },
)
@admin_required
def queue_page(user):
    queue = mail_queue.get()
    return render_template(
        "admin/queue.html",
        user=user,
        state=operations.status(queue),
        letters=operations.dead_letters(queue),
        refresh=REFRESH_SECONDS,
    )


def _act_on_events(action, *, verb, done):
    """Apply `action` to the form's event (or every one, `all=1`), say what it did, and go
    back to the queue page."""
    event_id = request.form.get("event_id") or None
    every = request.form.get("all") == "1"
    if not every and event_id is None:
        flash(f"Nothing to {verb}: no event given.")
    else:
        changed = action(mail_queue.get(), event_id=None if every else event_id)
        flash(done.format(len(changed)) if changed else f"Nothing to {verb}.")
    return redirect(url_for("admin.queue_page"))


def _acts_on_events(summary):
    """Declare a form of the queue page that acts on one mail (`event_id`) or every one."""
    return documented(
        tag=TAG,
        summary=summary,
        security=SIGNED_IN,
        form=_form("event_id", "all"),
        responses={
            302: "To the queue page, saying what was done; to the sign-in form if not signed in",
            400: STALE_FORM,
            403: NOT_AN_ADMIN,
            503: UNAVAILABLE,
        },
    )


@bp.post("/queue/retry")
@_acts_on_events("Put a dead letter (`event_id`), or every one (`all=1`), back in the queue")
@admin_required
def retry(user):
    return _act_on_events(operations.retry, verb="retry", done="Put back {} mail(s).")


@bp.post("/queue/release")
@_acts_on_events("Send a held mail, one over a customer's daily cap (`event_id`, or `all=1`)")
@admin_required
def release(user):
    return _act_on_events(operations.release, verb="release", done="Released {} mail(s).")
