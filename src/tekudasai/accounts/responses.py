"""What /api/auth/* (better-auth's own shapes) and /api/users answer, for the OpenAPI document
(and validated on the way out)."""

from __future__ import annotations

from pydantic import Field

from tekudasai.core.schemas import CamelModel, Timestamp


class UserOut(CamelModel):
    """`service.public_user`: decrypted at the edge."""

    id: str
    name: str
    email: str
    email_verified: bool
    image: str | None
    role: str
    banned: bool
    ban_reason: str | None
    ban_expires: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp
    two_factor_enabled: bool = False


class SessionOut(CamelModel):
    """`service.public_session`."""

    id: str
    user_id: str
    expires_at: Timestamp
    created_at: Timestamp
    updated_at: Timestamp
    ip_address: str | None
    user_agent: str | None
    impersonated_by: str | None
    token: str


class SignedUp(CamelModel):
    token: str
    user: UserOut


class SignedIn(CamelModel):
    redirect: bool
    token: str
    user: UserOut


class CurrentSession(CamelModel):
    session: SessionOut
    user: UserOut


class Success(CamelModel):
    success: bool


class SignedOutEverywhere(CamelModel):
    success: bool
    status: bool
    revoked: int


class Done(CamelModel):
    status: bool


class DoneWithMessage(CamelModel):
    status: bool
    message: str


class OneUser(CamelModel):
    user: UserOut


class Provider(CamelModel):
    id: str
    name: str


class SocialStart(CamelModel):
    url: str
    redirect: bool


class UserList(CamelModel):
    """better-auth's admin list."""

    users: list[UserOut]
    total: int
    limit: int
    offset: int


class TwoFactorRedirect(CamelModel):
    """Sign-in with two-factor on: no session until the second factor."""

    two_factor_redirect: bool


class TotpSetUp(CamelModel):
    totp_uri: str = Field(alias="totpURI")
    backup_codes: list[str]


class TotpUri(CamelModel):
    totp_uri: str = Field(alias="totpURI")


class BackupCodes(CamelModel):
    status: bool
    backup_codes: list[str]


class SecondFactorPassed(CamelModel):
    token: str
    user: UserOut


class PasskeyOut(CamelModel):
    """better-auth's passkey shape."""

    id: str
    name: str | None
    public_key: str
    user_id: str
    credential_id: str = Field(alias="credentialID")
    counter: int
    device_type: str
    backed_up: bool
    transports: str | None
    aaguid: str | None
    created_at: Timestamp


class TokenOut(CamelModel):
    """`tokens.public_token`: never the token itself."""

    id: str
    name: str
    scopes: list[str]
    created_at: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None


class TokenCreated(TokenOut):
    """The answer to a token's creation: the only time `token` is shown."""

    token: str


class AnyTokenOut(TokenOut):
    """Admins' list: whose token it is."""

    user_id: str
