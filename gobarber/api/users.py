"""Users: `POST /users` (sign up) and `PUT /users` (profile)."""

from flask import Blueprint
from pydantic import BaseModel, model_validator

from gobarber.api.contract import current_user, endpoint
from gobarber.api.fields import Email, FieldProblem, Id, Name, Password
from gobarber.api.schemas import Profile, SignedUpUser
from gobarber.services import users

bp = Blueprint("users", __name__)


class SignUp(BaseModel):
    name: Name
    email: Email
    password: Password
    provider: bool = False


class ProfileUpdate(BaseModel):
    name: Name | None = None
    email: Email | None = None
    avatar_id: Id | None = None
    oldPassword: Password | None = None
    password: Password | None = None
    confirmPassword: str | None = None

    @model_validator(mode="after")
    def _passwords_go_together(self):
        if self.password is not None and self.oldPassword is None:
            raise FieldProblem("required when password is given", field="oldPassword")
        if self.oldPassword is not None and self.password is None:
            raise FieldProblem("required when oldPassword is given", field="password")
        if self.password is not None and self.confirmPassword is None:
            raise FieldProblem("required when password is given", field="confirmPassword")
        if self.password is not None and self.confirmPassword != self.password:
            raise FieldProblem("must equal password", field="confirmPassword")
        return self


@bp.post("/users")
@endpoint(
    auth=False,
    body=SignUp,
    summary="Sign up as a customer, or as a provider with provider: true",
    responses={
        200: (SignedUpUser, "The new user"),
        400: "Validation fails or User already exists.",
    },
)
def sign_up(body):
    user = users.sign_up(**body.model_dump())
    return SignedUpUser.of(user)


@bp.put("/users")
@endpoint(
    body=ProfileUpdate,
    summary="Change name, email, avatar or password",
    responses={
        200: (Profile, "The profile"),
        400: "Validation fails, User already exists. or Avatar file not found",
        401: "Password does not match",
    },
)
def update_profile(body):
    given = body.model_dump(exclude_unset=True)
    changes = {k: v for k, v in given.items() if v is not None or k == "avatar_id"}
    if "oldPassword" in changes:
        changes["old_password"] = changes.pop("oldPassword")
    user = users.update_profile(user=current_user(), changes=changes)
    return Profile.of(user)
