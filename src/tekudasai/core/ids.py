"""Opaque identifiers."""

import secrets


def new_id() -> str:
    """A 32-character URL-safe random id (better-auth style text ids)."""
    return secrets.token_urlsafe(24)
