"""Errors of the tickets domain; rendered into the contract's envelope by core/handlers.py."""

from __future__ import annotations

from tekudasai.core.errors import AppError, NotFound, ValidationFailed


class TicketNotFound(NotFound):
    message = "Ticket not found."


class InvalidTransition(AppError):
    status_code = 400
    code = "INVALID_TRANSITION"
    message = "This status change is not allowed."


class FormClosed(AppError):
    status_code = 400
    code = "FORM_CLOSED"
    message = "The form of this ticket is closed; an agent must re-open it before you edit it."


class InvalidAssignee(ValidationFailed):
    message = "Tickets can only be assigned to agents or admins."


class InvalidCursor(ValidationFailed):
    message = "The cursor is not valid; start again without it."
