"""The shop's own pages, under /app: customers book and cancel, providers see their day.

Server-rendered Jinja with plain HTML forms (Flask-WTF: validation and CSRF) and a
little JavaScript where a page follows something live; text through Flask-Babel, in
pt-BR unless the browser prefers English. Every action calls the services the JSON API
calls, and a form checks its fields with the API's own field types (`forms.py`), so no
rule is written twice. Signing in opens the server-side session the admin pages use;
the API keeps its bearer tokens.

Modules: `accounts` (sign up, in and out, forgot and reset password), `customer`
(book, my appointments, cancel and the mail's status), `provider` (the day, the
notifications), `profile`.
"""

from functools import wraps

import redis
from flask import (
    Blueprint,
    current_app,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisClusterException

from gobarber.api.contract import HTML_PAGE, documented
from gobarber.extensions import csrf, db, page_error
from gobarber.models import User
from gobarber.web.security import PAGES_PATH

bp = Blueprint("pages", __name__, url_prefix=PAGES_PATH)

# For /openapi.json: pages for people, declared beside each view with `page(...)`.
TAG = "shop pages"
PAGE = ("The page", HTML_PAGE)
FORM_AGAIN = ("The form again, with each wrong field's message beside it", HTML_PAGE)
TO_SIGN_IN = "Not signed in (or signed out by a password change): to the sign-in page"
STALE_FORM = ("The form's CSRF token is missing or stale: a page saying so", HTML_PAGE)
UNAVAILABLE = ("Redis, where the sessions live, does not answer: a page saying so", HTML_PAGE)
SIGNED_IN = [{"pageSession": []}]


def page(*, summary, responses, method=None, form=None, signed_in=True):
    """Declare a page for /openapi.json: its answers, plus the 503 every page may give,
    the stale-form 400 of a POST and, when it needs a person, the way to the sign-in."""
    declared = {**responses, 503: UNAVAILABLE}
    if method == "POST":
        declared.setdefault(400, STALE_FORM)
    if signed_in:
        declared.setdefault(302, TO_SIGN_IN)
    return documented(
        tag=TAG,
        method=method,
        summary=summary,
        responses=declared,
        form=form,
        security=SIGNED_IN if signed_in else None,
    )


@bp.before_request
def _session_and_form_token():
    # The null session is what the pages get when Redis, which keeps them, did not answer.
    if current_app.session_interface.is_null_session(session):
        return unavailable()
    csrf.protect()  # POST and the like only; a missing or stale token raises CSRFError
    return None


def unavailable():
    return error_page(503, _("The service is unavailable for a moment; try again shortly."))


@bp.errorhandler(CSRFError)
def _stale_form(error):
    return error_page(400, _("This form has expired. Go back, reload the page and send it again."))


@bp.errorhandler(redis.RedisError)
@bp.errorhandler(RedisClusterException)
def _redis_down(error):
    return unavailable()


def error_page(status, message):
    """An error as a page of ours: its status, what happened, a way back. It names no
    signed-in person: the error may be the database's, which that would ask again."""
    g.error_page = True
    return render_template("pages/error.html", status=status, message=message), status


# Texts of the errors the app raises itself, as the pages say them.
_PAGE_MESSAGES = {
    400: lambda: _("The request could not be read."),
    404: lambda: _("There is no such page."),
    405: lambda: _("This page cannot be used that way."),
    413: lambda: _("That is more than the page accepts."),
    429: lambda: _("Too many attempts; try again later."),
    500: lambda: _("Something went wrong on our side; it has been logged."),
}


def _page_error(status, message):
    """`extensions.page_error`: a page for an error on the shop's paths."""
    if not request.path.startswith(PAGES_PATH + "/") and request.path != PAGES_PATH:
        return None
    shown = _PAGE_MESSAGES.get(status)
    return error_page(status, shown() if shown else _(message))


def signed_in_user():
    """The user this session signed in, or None (a password changed since ends it)."""
    if not session.get("user_id"):
        return None
    user = db.session.get(User, session["user_id"])
    if user is None or session.get("token_version") != user.token_version:
        return None
    return user


def sign_in_session(user):
    """Open a session for `user`, under a new id."""
    session.clear()
    session["user_id"] = user.id
    session["token_version"] = user.token_version
    # A new id: whoever planted or saw the signed-out session's id gains nothing.
    current_app.session_interface.regenerate(session)


def person_required(role=None):
    """Send strangers to the sign-in page; `role` "customer" or "provider" keeps the
    page to one of them (the other is sent to their own home)."""

    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            user = signed_in_user()
            if user is None:
                session.clear()
                return redirect(url_for("pages.sign_in", next=request.full_path.rstrip("?")))
            if role is not None and (role == "provider") != user.provider:
                return redirect(url_for("pages.home"))
            return view(user, *args, **kwargs)

        return guarded

    return decorate


def page_url(endpoint):
    """The address of a page, or None when no such page is registered (the header links
    only to the pages there are)."""
    if endpoint not in current_app.view_functions:
        return None
    return url_for(endpoint)


@bp.app_context_processor
def _signed_in_person():
    # Every page's header shows who is signed in. Mails render without a request.
    if not has_request_context() or not request.path.startswith(PAGES_PATH):
        return {}
    person = None if g.get("error_page") else signed_in_user()
    return {"person": person, "page_url": page_url}


@documented(
    tag=TAG,
    summary="The password reset mail's link (APP_WEB_URL/reset-password): to the page",
    responses={302: "To /app/reset-password, with the link's token"},
)
def _reset_link():
    return redirect(url_for("pages.reset_password", token=request.args.get("token")))


def init_app(app):
    """Register the pages, their error pages and the reset link's address."""
    # Their views join the blueprint.
    from gobarber.web.pages import accounts, customer, profile, provider  # noqa: F401

    app.register_blueprint(bp)
    # The reset mail links to APP_WEB_URL/reset-password; APP_WEB_URL is APP_URL unless
    # set, so the link lands here and goes on to the page.
    app.add_url_rule("/reset-password", "reset_link", _reset_link)
    page_error.set(app, _page_error)
