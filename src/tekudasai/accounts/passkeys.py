"""Passkeys (WebAuthn, py_webauthn): register, list, delete, sign in.

The relying party is the base URL's host; browsers refuse an IP address as RP id, so a
loopback IP becomes `localhost` (and passkeys then work from http://localhost:PORT).
Challenges are single-use rows (accounts/challenges.py); the sign counter is checked on
every assertion and moved forward with a conditional update, so a replayed (or cloned)
assertion is refused. User verification is required: a passkey counts as two factors.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tekudasai.accounts import challenges, service
from tekudasai.accounts.errors import BannedUser, ChallengeNotFound, PasskeyFailed
from tekudasai.accounts.models import Passkey, User
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.errors import NotFound, ValidationFailed
from tekudasai.core.schemas import iso

RP_NAME = "Te Kudasai"
MAX_NAME_LENGTH = 100
MAX_PASSKEYS = 50

# py_webauthn (with pyOpenSSL and pyasn1) is imported where a ceremony runs, not at start-up:
# about 15 MB per web worker otherwise, for a page few people open.


def rp_id(settings: Settings) -> str:
    host = urlsplit(settings.base_url).hostname or "localhost"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.lower()
    return "localhost" if address.is_loopback else host


def expected_origins(settings: Settings) -> list[str]:
    """The base URL's origin (as `localhost` for a loopback IP) and the trusted origins on
    the relying party's host or a subdomain of it."""
    rp = rp_id(settings)
    base = urlsplit(settings.base_url)
    port = f":{base.port}" if base.port else ""
    origins = [f"{base.scheme}://{rp}{port}"]
    for origin in settings.trusted_origins:
        host = urlsplit(origin).hostname or ""
        if (host == rp or host.endswith("." + rp)) and origin not in origins:
            origins.append(origin)
    return origins


def _credential(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise ValidationFailed(
            "`response` must be the credential from the browser (as JSON).",
            errors=[{"field": "response", "message": "Not a WebAuthn credential"}],
        )
    return body


def public_passkey(row: Passkey) -> dict[str, Any]:
    """better-auth's passkey shape."""
    from webauthn.helpers import bytes_to_base64url

    return {
        "id": row.id,
        "name": row.name,
        "publicKey": bytes_to_base64url(row.public_key),
        "userId": row.user_id,
        "credentialID": bytes_to_base64url(row.credential_id),
        "counter": row.counter,
        "deviceType": row.device_type,
        "backedUp": row.backed_up,
        "transports": ",".join(row.transports) or None,
        "aaguid": row.aaguid,
        "createdAt": iso(row.created_at),
    }


async def list_passkeys(db: AsyncSession, *, user_id: str) -> list[Passkey]:
    return list(
        (
            await db.scalars(
                select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at)
            )
        ).all()
    )


async def registration_options(
    db: AsyncSession, settings: Settings, cipher: PiiCipher, *, user: Any
) -> tuple[dict[str, Any], str]:
    """Options for navigator.credentials.create() and the challenge cookie's token."""
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    existing = await list_passkeys(db, user_id=user.id)
    if len(existing) >= MAX_PASSKEYS:
        raise ValidationFailed(f"At most {MAX_PASSKEYS} passkeys per account.")
    options = generate_registration_options(
        rp_id=rp_id(settings),
        rp_name=RP_NAME,
        user_id=user.id.encode(),
        user_name=service.stored_email(user, cipher),
        user_display_name=cipher.decrypt(user.name_ciphertext, context="user.name"),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=p.credential_id) for p in existing],
    )
    token = await challenges.issue(
        db, purpose=challenges.PASSKEY_REGISTER, user_id=user.id, challenge=options.challenge
    )
    return json.loads(options_to_json(options)), token


async def verify_registration(
    db: AsyncSession,
    settings: Settings,
    *,
    user_id: str,
    token: str | None,
    response: Any,
    name: str | None,
    own_transaction: async_sessionmaker[AsyncSession] | None = None,
) -> Passkey:
    """Store the credential the browser made; `own_transaction` consumes the challenge for
    good, whatever happens next (a failed attempt cannot be retried against it)."""
    from webauthn import verify_registration_response
    from webauthn.helpers.exceptions import WebAuthnException
    from webauthn.helpers.structs import AuthenticatorTransport

    credential = _credential(response)
    if name is not None and len(name.strip()) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"A passkey name has at most {MAX_NAME_LENGTH} characters.")
    challenge = await challenges.consume(
        db, token=token, purpose=challenges.PASSKEY_REGISTER, own_transaction=own_transaction
    )
    if challenge is None or challenge.user_id != user_id or challenge.challenge is None:
        raise ChallengeNotFound()
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge.challenge,
            expected_rp_id=rp_id(settings),
            expected_origin=expected_origins(settings),
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyFailed(f"The passkey could not be registered: {exc}") from exc
    transports = [
        t
        for t in (credential.get("response", {}).get("transports") or [])
        if t in {m.value for m in AuthenticatorTransport}
    ]
    row = Passkey(
        user_id=user_id,
        name=(name or "").strip() or None,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        counter=verified.sign_count,
        transports=transports,
        aaguid=verified.aaguid,
        device_type=verified.credential_device_type.value,
        backed_up=verified.credential_backed_up,
    )
    db.add(row)
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError as exc:
        raise PasskeyFailed("This passkey is registered already.") from exc
    return row


async def authentication_options(
    db: AsyncSession, settings: Settings
) -> tuple[dict[str, Any], str]:
    """Options for navigator.credentials.get(): discoverable credentials, any account."""
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import UserVerificationRequirement

    options = generate_authentication_options(
        rp_id=rp_id(settings), user_verification=UserVerificationRequirement.REQUIRED
    )
    token = await challenges.issue(
        db, purpose=challenges.PASSKEY_AUTHENTICATE, challenge=options.challenge
    )
    return json.loads(options_to_json(options)), token


async def verify_authentication(
    db: AsyncSession,
    settings: Settings,
    *,
    token: str | None,
    response: Any,
    own_transaction: async_sessionmaker[AsyncSession] | None = None,
) -> User:
    """The user the assertion proves; the challenge is used up and the counter moved on."""
    from webauthn import verify_authentication_response
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.exceptions import WebAuthnException

    credential = _credential(response)
    challenge = await challenges.consume(
        db, token=token, purpose=challenges.PASSKEY_AUTHENTICATE, own_transaction=own_transaction
    )
    if challenge is None or challenge.challenge is None:
        raise ChallengeNotFound()
    try:
        credential_id = base64url_to_bytes(str(credential.get("rawId") or credential["id"]))
    except (ValueError, TypeError) as exc:
        raise PasskeyFailed() from exc
    row = await db.scalar(select(Passkey).where(Passkey.credential_id == credential_id))
    if row is None:
        raise PasskeyFailed("This passkey is not registered here.")
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge.challenge,
            expected_rp_id=rp_id(settings),
            expected_origin=expected_origins(settings),
            credential_public_key=row.public_key,
            credential_current_sign_count=row.counter,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyFailed(f"The passkey could not be verified: {exc}") from exc
    # Conditional: of two assertions with the same counter, one wins. Authenticators that
    # keep no counter (always 0) are allowed, as WebAuthn says.
    moved = await db.scalar(
        update(Passkey)
        .where(Passkey.id == row.id, Passkey.counter == row.counter)
        .values(counter=verified.new_sign_count, last_used_at=func.now(), updated_at=func.now())
        .returning(Passkey.user_id)
        .execution_options(synchronize_session=False)
    )
    user = await db.get(User, row.user_id) if moved else None
    if user is None:
        raise PasskeyFailed()
    if service.is_banned(user):
        raise BannedUser()
    return user


async def delete_passkey(db: AsyncSession, *, user_id: str, passkey_id: str) -> None:
    deleted = await db.scalar(
        delete(Passkey)
        .where(Passkey.id == passkey_id, Passkey.user_id == user_id)
        .returning(Passkey.id)
    )
    if deleted is None:
        raise NotFound("No such passkey.")


async def rename_passkey(db: AsyncSession, *, user_id: str, passkey_id: str, name: str) -> Passkey:
    row = await db.scalar(
        select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id)
    )
    if row is None:
        raise NotFound("No such passkey.")
    row.name = name.strip()[:MAX_NAME_LENGTH] or None
    await db.flush()
    return row
