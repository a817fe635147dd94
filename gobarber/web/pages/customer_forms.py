"""The customer's forms, checked with the API's own types.

A booking's hour is `POST /appointments`'s `date` (a `Moment`): each free hour of the day
page is a button of one form, sending that hour's start as `date`.
"""

from flask_wtf import FlaskForm
from wtforms import HiddenField

from gobarber.api.fields import Moment
from gobarber.web.pages.forms import Checked


class BookingForm(FlaskForm):
    """Book the hour that holds `date`, with the provider of the page's address."""

    date = HiddenField(validators=[Checked(Moment)])
