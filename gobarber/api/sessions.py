"""Sessions: `POST /sessions` trades an email and password for a JWT."""

from flask import Blueprint
from pydantic import BaseModel

from gobarber.api.contract import endpoint
from gobarber.api.fields import Email, SignInPassword
from gobarber.api.schemas import Session
from gobarber.services import users

bp = Blueprint("sessions", __name__)


class SignIn(BaseModel):
    email: Email
    password: SignInPassword


@bp.post("/sessions")
@endpoint(
    auth=False,
    body=SignIn,
    summary="Sign in",
    responses={
        200: (Session, "The user and a token"),
        400: "Validation fails",
        401: "User not found or Password does not match",
    },
)
def sign_in(body):
    user, token = users.sign_in(email=body.email, password=body.password)
    return Session.of(user, token)
