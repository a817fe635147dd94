"""The forms of the provider's day and of the profile, checked with the API's own types.

The day's date is `GET /schedule`'s `Moment`; the profile's fields are `PUT /users`'s,
and its rules across the password fields are that body's own model (`ProfileUpdate`),
run on what the form holds: a page and the API refuse the same changes.
"""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from pydantic import ValidationError
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import Optional
from wtforms.widgets import DateInput

from gobarber.api.fields import Email, Moment, Name, Password, field_messages
from gobarber.api.users import ProfileUpdate
from gobarber.web.pages.forms import Checked

# ProfileUpdate's field -> the form's.
_PROFILE_FIELDS = {
    "name": "name",
    "email": "email",
    "oldPassword": "old_password",
    "password": "password",
    "confirmPassword": "password_confirmation",
}


class DayForm(FlaskForm):
    """The day a provider looks at: a query, not a change, so no CSRF token."""

    class Meta:
        csrf = False

    date = StringField(_l("Day"), widget=DateInput(), validators=[Checked(Moment)])


class ProfileForm(FlaskForm):
    name = StringField(_l("Name"), validators=[Checked(Name)])
    email = EmailField(_l("E-mail"), validators=[Checked(Email)])
    old_password = PasswordField(
        _l("Current password"), validators=[Optional(strip_whitespace=False), Checked(Password)]
    )
    password = PasswordField(
        _l("New password"), validators=[Optional(strip_whitespace=False), Checked(Password)]
    )
    password_confirmation = PasswordField(_l("New password, again"))

    def changes_password(self):
        """Tell whether the form asks for a new password (or gives the current one)."""
        return bool(self.old_password.data or self.password.data)

    def body(self):
        """What the form holds, as `PUT /users`'s body would say it."""
        body = {"name": self.name.data, "email": self.email.data}
        if self.changes_password() or self.password_confirmation.data:
            body |= {
                "oldPassword": self.old_password.data or None,
                "password": self.password.data or None,
                "confirmPassword": self.password_confirmation.data or None,
            }
        return body

    def validate(self, extra_validators=None):
        if not super().validate(extra_validators):
            return False
        try:
            ProfileUpdate.model_validate(self.body())
        except ValidationError as error:
            for name, message in field_messages(error).items():
                self[_PROFILE_FIELDS[name]].errors.append(_(message))
            return False
        return True

    def changes(self):
        """The changes for `services.users.update_profile`, as `PUT /users` makes them."""
        changes = {"name": self.name.data, "email": self.email.data}
        if self.changes_password():
            changes |= {"old_password": self.old_password.data, "password": self.password.data}
        return changes


class AvatarForm(FlaskForm):
    avatar = FileField(
        _l("New picture"),
        validators=[FileRequired(_l("Choose an image file to upload."))],
        render_kw={"accept": "image/jpeg,image/png,image/gif,image/webp"},
    )
