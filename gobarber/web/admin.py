"""The operator's queue page: `/admin/queue`, server-rendered, for admin users only.

Signing in uses a session cookie (the API's bearer tokens are for the clients). Every
action here is also a `flask queue` command.
"""

import secrets
from functools import wraps

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from gobarber.errors import GobarberError
from gobarber.extensions import db, mail_queue
from gobarber.mail import operations
from gobarber.models import User
from gobarber.services.users import sign_in

bp = Blueprint("admin", __name__, url_prefix="/admin")

REFRESH_SECONDS = 5


def _csrf_token():
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def admin_required(view):
    """Send strangers to the sign-in form and refuse users who are not admins."""

    @wraps(view)
    def guarded(*args, **kwargs):
        user = db.session.get(User, session.get("user_id") or 0)
        if user is None:
            return redirect(url_for("admin.login", next=request.path))
        if not user.admin:
            return render_template("admin/refused.html", user=user), 403
        if request.method == "POST" and request.form.get("csrf") != session.get("csrf"):
            return render_template("admin/refused.html", user=user, stale=True), 400
        return view(user, *args, **kwargs)

    return guarded


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        try:
            user, _ = sign_in(
                email=request.form.get("email", "").strip().lower(),
                password=request.form.get("password", ""),
            )
        except GobarberError as failure:
            error = failure.message
        else:
            session.clear()
            session["user_id"] = user.id
            return redirect(url_for("admin.queue_page"))
    return render_template("admin/login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/queue")
@admin_required
def queue_page(user):
    queue = mail_queue.get()
    return render_template(
        "admin/queue.html",
        user=user,
        state=operations.status(queue),
        letters=operations.dead_letters(queue),
        csrf=_csrf_token(),
        refresh=REFRESH_SECONDS,
    )


@bp.post("/queue/retry")
@admin_required
def retry(user):
    event_id = request.form.get("event_id") or None
    every = request.form.get("all") == "1"
    if not every and event_id is None:
        flash("Nothing to retry: no event given.")
    else:
        retried = operations.retry(mail_queue.get(), event_id=None if every else event_id)
        flash(f"Put back {len(retried)} mail(s)." if retried else "Nothing to retry.")
    return redirect(url_for("admin.queue_page"))
