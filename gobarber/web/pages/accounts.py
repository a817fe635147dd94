"""Sign up, sign in and out, forgot and reset password: the pages' accounts.

The same services as `POST /users`, `POST /sessions` and `/password/*`. A sign-in
opens the session the admin pages use too; a password reset through the mailed link
ends every earlier session and token of the user.
"""

import posixpath
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from gobarber.errors import GobarberError, Unauthorized
from gobarber.services import password_resets, users
from gobarber.web.pages import (
    FORM_AGAIN,
    PAGE,
    bp,
    page,
    person_required,
    sign_in_session,
    signed_in_user,
)
from gobarber.web.pages.forms import ForgotForm, ResetForm, SignInForm, SignUpForm


def _home_of(user):
    return url_for("pages.day" if user.provider else "pages.appointments")


def _form(*fields):
    """The JSON schema of a page's form of text `fields`, with its CSRF token."""
    properties = {name: {"type": "string"} for name in ("csrf_token", *fields)}
    return {"type": "object", "properties": properties, "required": ["csrf_token"]}


def _safe_next(target):
    """`next` only when it is a path of the pages: never another site, nor a `..` out."""
    parts = urlsplit(target or "")
    path = parts.path
    if (
        parts.scheme
        or parts.netloc
        or "\\" in path
        or posixpath.normpath(path) != path.rstrip("/")
        or not path.startswith(bp.url_prefix + "/")
    ):
        return None
    return target


@bp.get("/")
@page(
    summary="The shop's pages: a provider's day, a customer's appointments, else sign in",
    responses={302: "To the signed-in person's own page, or to the sign-in page"},
    signed_in=False,
)
def home():
    """Signed in: the person's own page; else the sign-in page."""
    user = signed_in_user()
    return redirect(_home_of(user) if user else url_for("pages.sign_in"))


@bp.route("/sign-in", methods=["GET", "POST"])
@page(method="GET", summary="The sign-in form", responses={200: PAGE}, signed_in=False)
@page(
    method="POST",
    summary="Sign in with an e-mail and password; opens the pages' session",
    form=_form("email", "password", "next"),
    responses={
        302: "Signed in: to `next`, or the person's own page",
        400: FORM_AGAIN,
        401: ("The form again: the e-mail or the password is wrong", PAGE[1]),
        429: ("Too many failed sign-ins: a page saying so, and Retry-After", PAGE[1]),
    },
    signed_in=False,
)
def sign_in():
    form = SignInForm(next=request.args.get("next"))
    status = 200
    if form.validate_on_submit():
        try:
            user, _token = users.sign_in(email=form.email.data, password=form.password.data)
        except Unauthorized:
            # One message for both: the page does not tell which e-mails have accounts.
            form.password.errors.append(_("E-mail or password is wrong."))
            status = 401
        else:
            sign_in_session(user)
            return redirect(_safe_next(form.next.data) or _home_of(user))
    elif form.is_submitted():
        status = 400
    return render_template("pages/sign_in.html", form=form), status


@bp.route("/sign-up", methods=["GET", "POST"])
@page(method="GET", summary="The sign-up form", responses={200: PAGE}, signed_in=False)
@page(
    method="POST",
    summary="Create an account (a customer, or a provider) and sign in",
    form=_form("name", "email", "password", "provider"),
    responses={
        302: "Signed up and in: to the person's own page",
        400: FORM_AGAIN,
        429: ("Too many sign-ups from this address: a page saying so", PAGE[1]),
    },
    signed_in=False,
)
def sign_up():
    form = SignUpForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = users.sign_up(
                name=form.name.data,
                email=form.email.data,
                password=form.password.data,
                provider=form.provider.data,
            )
        except GobarberError as error:
            form.email.errors.append(_(error.message))
            status = error.status
        else:
            sign_in_session(user)
            flash(_("Welcome, %(name)s!", name=user.name))
            return redirect(_home_of(user))
    elif form.is_submitted():
        status = 400
    return render_template("pages/sign_up.html", form=form), status


@bp.post("/sign-out")
@page(method="POST", summary="Sign out", form=_form(), responses={})
@person_required()
def sign_out(user):
    session.clear()
    return redirect(url_for("pages.sign_in"))


@bp.route("/forgot-password", methods=["GET", "POST"])
@page(method="GET", summary="Ask for a password reset link", responses={200: PAGE}, signed_in=False)
@page(
    method="POST",
    summary="Mail a reset link to the account of an e-mail, if it has one",
    form=_form("email"),
    responses={200: ("The same page for any address: check your mail", PAGE[1]), 400: FORM_AGAIN},
    signed_in=False,
)
def forgot_password():
    form = ForgotForm()
    if form.validate_on_submit():
        password_resets.request_reset(email=form.email.data)
        # The same answer for any address: the page does not tell who has an account.
        return render_template("pages/forgot_sent.html", email=form.email.data)
    status = 400 if form.is_submitted() else 200
    return render_template("pages/forgot.html", form=form), status


@bp.route("/reset-password", methods=["GET", "POST"])
@page(
    method="GET",
    summary="Choose a new password, from the mailed link (?token=)",
    responses={200: PAGE},
    signed_in=False,
)
@page(
    method="POST",
    summary="Set the new password; every earlier session and token of the user ends",
    form=_form("token", "password", "password_confirmation"),
    responses={
        302: "Changed: to the sign-in page",
        400: ("The form again: a wrong field, or the link is invalid or expired", PAGE[1]),
    },
    signed_in=False,
)
def reset_password():
    form = ResetForm(token=request.args.get("token"))
    status = 200
    if form.validate_on_submit():
        try:
            password_resets.reset_password(token=form.token.data, password=form.password.data)
        except GobarberError as error:
            # "Invalid token" or "Token expired": the link, not a field, is at fault.
            return render_template("pages/reset.html", form=form, link_error=_(error.message)), 400
        session.clear()
        flash(_("Your password was changed. Sign in with the new one."))
        return redirect(url_for("pages.sign_in"))
    if form.is_submitted():
        status = 400
    return render_template("pages/reset.html", form=form), status
