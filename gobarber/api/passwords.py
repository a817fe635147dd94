"""Forgotten passwords: `POST /password/forgot` mails a reset link, `POST /password/reset`
sets a new password with its token."""

from typing import Annotated

from flask import Blueprint
from pydantic import BaseModel, StringConstraints, model_validator

from gobarber.api.contract import endpoint
from gobarber.api.fields import Email, FieldProblem, Password
from gobarber.services import password_resets

bp = Blueprint("passwords", __name__)

# Tokens are 43 characters; room for a client that pads them, none for a novel.
ResetToken = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Forgot(BaseModel):
    email: Email


class Reset(BaseModel):
    token: ResetToken
    password: Password
    password_confirmation: str

    @model_validator(mode="after")
    def _confirmed(self):
        if self.password_confirmation != self.password:
            raise FieldProblem("must equal password", field="password_confirmation")
        return self


@bp.post("/password/forgot")
@endpoint(
    auth=False,
    body=Forgot,
    summary="Mail a password reset link to the address, if it has an account",
    responses={
        # The same answer for an unknown address: nobody learns which accounts exist.
        204: "Accepted; a link goes out if the address has an account",
        400: "Validation fails",
    },
)
def forgot(body):
    password_resets.request_reset(email=body.email)


@bp.post("/password/reset")
@endpoint(
    auth=False,
    body=Reset,
    summary="Set a new password with a reset link's token",
    responses={
        204: "Password changed; every earlier token of the user is refused",
        400: "Validation fails, Invalid token or Token expired",
    },
)
def reset(body):
    password_resets.reset_password(token=body.token, password=body.password)
