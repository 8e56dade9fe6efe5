"""Errors of the accounts domain (codes follow better-auth where it has one)."""

from __future__ import annotations

from tekudasai.core.errors import AppError


class UserAlreadyExists(AppError):
    status_code = 422
    code = "USER_ALREADY_EXISTS"
    message = "A user with this e-mail already exists."


class InvalidCredentials(AppError):
    status_code = 401
    code = "INVALID_EMAIL_OR_PASSWORD"
    message = "Invalid e-mail or password."


class BannedUser(AppError):
    status_code = 403
    code = "BANNED_USER"
    message = "You have been banned from this application."


class InvalidToken(AppError):
    status_code = 400
    code = "INVALID_TOKEN"
    message = "The link is invalid, expired or already used."


class LastAdmin(AppError):
    status_code = 400
    code = "LAST_ADMIN"
    message = "This would leave no administrator; make someone else admin first."


class CannotBanYourself(AppError):
    status_code = 400
    code = "YOU_CANNOT_BAN_YOURSELF"
    message = "You cannot ban yourself."


class ProviderNotFound(AppError):
    status_code = 404
    code = "PROVIDER_NOT_FOUND"
    message = "This sign-in provider is not configured."


class InvalidOAuthState(AppError):
    status_code = 400
    code = "INVALID_OAUTH_STATE"
    message = "The sign-in attempt expired or did not start here; please try again."


class OAuthFailed(AppError):
    status_code = 400
    code = "OAUTH_FAILED"
    message = "Signing in with the provider failed."


class AccountNotLinked(AppError):
    status_code = 403
    code = "ACCOUNT_NOT_LINKED"
    message = (
        "An account with this e-mail exists, but the provider did not confirm this very "
        "address; sign in with your password instead."
    )


class ProviderEmailNotVerified(AppError):
    status_code = 403
    code = "EMAIL_NOT_VERIFIED"
    message = (
        "The sign-in provider has not confirmed your e-mail address; confirm it there first, "
        "or sign up with e-mail and password."
    )


class UntrustedCallback(AppError):
    status_code = 400
    code = "INVALID_CALLBACK_URL"
    message = "The callback URL is not on a trusted origin."


class InsufficientScope(AppError):
    status_code = 403
    code = "INSUFFICIENT_SCOPE"
    message = "This access token's scopes do not allow this call."


class InvalidPassword(AppError):
    status_code = 400
    code = "INVALID_PASSWORD"
    message = "The password is not right."


class NoPassword(AppError):
    status_code = 400
    code = "CREDENTIAL_ACCOUNT_NOT_FOUND"
    message = "This account has no password yet; set one (Forgot password?) first."


class InvalidCode(AppError):
    status_code = 401
    code = "INVALID_CODE"
    message = "The code is not right, has expired or was already used."


class TwoFactorNotEnabled(AppError):
    status_code = 400
    code = "TWO_FACTOR_NOT_ENABLED"
    message = "Two-factor sign-in is not set up for this account."


class TwoFactorAlreadyEnabled(AppError):
    status_code = 400
    code = "TWO_FACTOR_ALREADY_ENABLED"
    message = "Two-factor sign-in is already on; turn it off first to set it up again."


class NoPendingSignIn(AppError):
    status_code = 401
    code = "INVALID_TWO_FACTOR_COOKIE"
    message = "No sign-in is waiting for a second factor; please sign in again."


class TwoFactorRequired(AppError):
    status_code = 403
    code = "TWO_FACTOR_REQUIRED"
    message = "Set up two-factor sign-in first (Settings → Security)."


class PasskeyFailed(AppError):
    status_code = 400
    code = "PASSKEY_VERIFICATION_FAILED"
    message = "The passkey could not be verified."


class ChallengeNotFound(AppError):
    status_code = 400
    code = "CHALLENGE_NOT_FOUND"
    message = "The passkey request expired or was already used; please try again."
