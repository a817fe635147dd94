"""The pages' forms (Flask-WTF), checked with the API's own field types.

A field declares the pydantic type the JSON API validates the same value with
(`Checked(Password)`); its message is the API's `fields` text, translated. So a page and
the API refuse exactly the same values, for the same reasons.
"""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from pydantic import TypeAdapter, ValidationError
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import StopValidation

from gobarber.api.fields import Email, Name, Password, SignInPassword, value_message


class Checked:
    """A WTForms validator that runs a pydantic field type and keeps what it makes."""

    def __init__(self, shape):
        self.adapter = TypeAdapter(shape)

    def __call__(self, form, field):
        try:
            field.data = self.adapter.validate_python(field.data)
        except ValidationError as error:
            raise StopValidation(_(value_message(error))) from None


class Matches:
    """The value must equal another field's (a password typed twice)."""

    def __init__(self, other):
        self.other = other

    def __call__(self, form, field):
        if field.data != form[self.other].data:
            raise StopValidation(_("must equal password"))


class SignInForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[Checked(Email)])
    password = PasswordField(_l("Password"), validators=[Checked(SignInPassword)])
    next = HiddenField()


class SignUpForm(FlaskForm):
    name = StringField(_l("Name"), validators=[Checked(Name)])
    email = EmailField(_l("E-mail"), validators=[Checked(Email)])
    password = PasswordField(_l("Password"), validators=[Checked(Password)])
    provider = BooleanField(_l("I am a barber (I take appointments)"))


class ForgotForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[Checked(Email)])


class ResetForm(FlaskForm):
    token = HiddenField()
    password = PasswordField(_l("New password"), validators=[Checked(Password)])
    password_confirmation = PasswordField(
        _l("New password, again"), validators=[Matches("password")]
    )
