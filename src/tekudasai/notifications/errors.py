"""Errors of the notifications domain; rendered into the contract's envelope."""

from __future__ import annotations

from tekudasai.core.errors import ValidationFailed


class InvalidPreferences(ValidationFailed):
    message = "Some notification settings are not valid."


class InvalidCursor(ValidationFailed):
    message = "The cursor is not valid; start again without it."


class InvalidReadRequest(ValidationFailed):
    message = 'Send {"ids": [...]} or {"all": true}.'
