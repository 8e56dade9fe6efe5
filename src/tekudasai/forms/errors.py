"""Errors of the forms domain (rendered by core/handlers.py into the contract's envelope)."""

from __future__ import annotations

from tekudasai.core.errors import AppError, NotFound, ValidationFailed


class InvalidFormData(AppError):
    """A form response breaks the form's rules; `errors` lists each field."""

    status_code = 400
    code = "INVALID_FORM_DATA"
    message = "The form response is not valid."


class InvalidFormDefinition(ValidationFailed):
    """A form definition (its elements) cannot be saved; `errors` lists each element's problem."""

    message = "The form definition is not valid."


class FormNotDisabled(AppError):
    status_code = 400
    code = "FORM_NOT_DISABLED"
    message = "Disable the form before deleting it."


class FormHasTickets(AppError):
    status_code = 400
    code = "FORM_HAS_TICKETS"
    message = "The form is used by tickets and cannot be deleted."


class FormNotFound(NotFound):
    message = "Form not found."
