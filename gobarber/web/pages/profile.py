"""The profile page: name, e-mail, password and avatar, for customers and providers alike.

The same services as `PUT /users` and `POST /files`: an avatar is uploaded as `POST
/files` stores one, then taken as `PUT /users {avatar_id}` takes it. A password change
ends every other session and token of the person (the service raises the token
version); this session is opened again under the new version, so its owner stays in.
"""

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from gobarber.api.contract import allow_upload
from gobarber.errors import GobarberError, TooLarge, Unauthorized
from gobarber.services import files, users
from gobarber.web.pages import (
    FORM_AGAIN,
    PAGE,
    bp,
    page,
    person_required,
    sign_in_session,
)
from gobarber.web.pages.provider_forms import AvatarForm, ProfileForm

PROFILE_FORM = {
    "type": "object",
    "properties": {
        name: {"type": "string"}
        for name in (
            "csrf_token",
            "name",
            "email",
            "old_password",
            "password",
            "password_confirmation",
        )
    },
    "required": ["csrf_token", "name", "email"],
}


def _multipart(*fields, file):
    """Declare the POST's body as a multipart form of text `fields` and one `file`
    (`page` declares urlencoded forms only)."""
    properties = {name: {"type": "string"} for name in fields}
    properties[file] = {"type": "string", "format": "binary"}
    body = {"type": "object", "properties": properties, "required": [*fields, file]}

    def record(view):
        operation = view.openapi_documented["POST"]["operation"]
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": body}},
        }
        return view

    return record


@bp.before_app_request
def _upload_limit():
    # Before the blueprint's CSRF check, which reads the form, and so the body: the
    # avatar's request may be as large as an upload, not only as a form.
    if request.endpoint == "pages.avatar" and request.method == "POST":
        allow_upload()


def _render(user, *, profile=None, avatar=None, status=200):
    if profile is None:
        profile = ProfileForm(formdata=None, name=user.name, email=user.email)
    if avatar is None:
        avatar = AvatarForm(formdata=None)
    shown = render_template("pages/profile.html", user=user, form=profile, avatar_form=avatar)
    return shown, status


@bp.route("/profile", methods=["GET", "POST"])
@page(method="GET", summary="The profile: name, e-mail, password and avatar", responses={200: PAGE})
@page(
    method="POST",
    summary="Change name and e-mail, and the password with the current one (PUT /users's "
    "rules); a new password ends every other session and token",
    form=PROFILE_FORM,
    responses={
        302: "Saved: to the profile, saying so",
        400: FORM_AGAIN,
        401: ("The form again: the current password is wrong", PAGE[1]),
    },
)
@person_required()
def profile(user):
    if request.method == "GET":
        return _render(user)
    form = ProfileForm()
    if not form.validate_on_submit():
        return _render(user, profile=form, status=400)
    try:
        saved = users.update_profile(user=user, changes=form.changes())
    except Unauthorized as error:  # "Password does not match": the current one is wrong
        form.old_password.errors.append(_(error.message))
        return _render(user, profile=form, status=error.status)
    except GobarberError as error:  # "User already exists.": the e-mail is taken
        form.email.errors.append(_(error.message))
        return _render(user, profile=form, status=error.status)
    if form.changes_password():
        # The change ended every session of the old version, this one included.
        sign_in_session(saved)
    flash(_("Your profile was saved."))
    return redirect(url_for("pages.profile"))


@bp.post("/profile/avatar")
@_multipart("csrf_token", file="avatar")
@page(
    method="POST",
    summary="Upload an image (as POST /files) and make it the avatar (as PUT /users)",
    responses={
        302: "Saved: to the profile, showing the new avatar",
        400: ("The profile again: no file, not an image, or the upload quota spent", PAGE[1]),
        413: ("The file is larger than MAX_UPLOAD_MB: a page, or the profile, saying so", PAGE[1]),
    },
)
@person_required()
def avatar(user):
    form = AvatarForm()
    if not form.validate_on_submit():
        return _render(user, avatar=form, status=400)
    given = form.avatar.data
    try:
        stored = files.store_upload(owner=user, stream=given.stream, filename=given.filename)
        users.update_profile(user=user, changes={"avatar_id": stored.id})
    except TooLarge as error:
        form.avatar.errors.append(
            _(
                "The image is larger than the %(mb)s MB allowed.",
                mb=current_app.config["MAX_UPLOAD_MB"],
            )
        )
        return _render(user, avatar=form, status=error.status)
    except GobarberError as error:
        form.avatar.errors.append(_(error.message))
        return _render(user, avatar=form, status=error.status)
    flash(_("Your new picture was saved."))
    return redirect(url_for("pages.profile"))
