"""Request bodies of the auth API (better-auth's field names, including `callbackURL`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tekudasai.core.schemas import StrictInput

# Generous caps: the services give the precise messages; these stop absurd inputs early.


class SignUpIn(StrictInput):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    image: str | None = Field(default=None, max_length=2000)
    callback_url: str | None = Field(default=None, alias="callbackURL", max_length=2000)
    remember_me: bool = True


class SignInIn(StrictInput):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    remember_me: bool = True
    callback_url: str | None = Field(default=None, alias="callbackURL", max_length=2000)


class SocialSignInIn(StrictInput):
    provider: str = Field(min_length=1, max_length=50)
    callback_url: str | None = Field(default=None, alias="callbackURL", max_length=2000)
    error_callback_url: str | None = Field(default=None, alias="errorCallbackURL", max_length=2000)
    new_user_callback_url: str | None = Field(
        default=None, alias="newUserCallbackURL", max_length=2000
    )
    disable_redirect: bool = False


class VerifyRequestIn(StrictInput):
    email: str | None = Field(default=None, min_length=1, max_length=320)
    callback_url: str | None = Field(default=None, alias="callbackURL", max_length=2000)


class ResetRequestIn(StrictInput):
    email: str = Field(min_length=1, max_length=320)
    redirect_to: str | None = Field(default=None, max_length=2000)


class ResetPasswordIn(StrictInput):
    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=1024)


class SetRoleIn(StrictInput):
    user_id: str = Field(min_length=1, max_length=100)
    role: Literal["user", "agent", "admin"]


class BanUserIn(StrictInput):
    user_id: str = Field(min_length=1, max_length=100)
    ban_reason: str | None = Field(default=None, max_length=500)
    ban_expires_in: int | None = Field(default=None, ge=1, le=100 * 365 * 86400)


class UnbanUserIn(StrictInput):
    user_id: str = Field(min_length=1, max_length=100)


class TokenCreateIn(StrictInput):
    name: str = Field(max_length=100)
    scopes: list[str] = Field(max_length=20)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class PasswordIn(StrictInput):
    """A security change asks for the account's password again."""

    password: str = Field(min_length=1, max_length=1024)


class EnableTwoFactorIn(PasswordIn):
    # better-auth's; the desk's own name is used in the URI.
    issuer: str | None = Field(default=None, max_length=100)


class VerifyCodeIn(StrictInput):
    code: str = Field(min_length=1, max_length=50)
    trust_device: bool = False


class PasskeyRegistrationIn(StrictInput):
    response: dict[str, object]
    name: str | None = Field(default=None, max_length=100)


class PasskeyAuthenticationIn(StrictInput):
    response: dict[str, object]


class PasskeyIdIn(StrictInput):
    id: str = Field(min_length=1, max_length=100)


class PasskeyRenameIn(PasskeyIdIn):
    name: str = Field(min_length=1, max_length=100)
