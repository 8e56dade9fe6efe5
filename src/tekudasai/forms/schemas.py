"""Request bodies of the forms API (elements are checked by the engine, not here)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from tekudasai.core.schemas import PathIdInput, StrictInput
from tekudasai.forms.engine import storable_text

FormName = Annotated[str, Field(min_length=1, max_length=200)]
FormDescription = Annotated[str, Field(max_length=5000)]


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must not be empty")
    return value.strip() if value is not None else None


def _storable(value: str | None) -> str | None:
    if value is not None and not storable_text(value):
        raise ValueError("must not contain NUL characters or broken Unicode")
    return value


class FormCreate(StrictInput):
    name: FormName
    description: FormDescription = ""
    disabled: bool = False
    elements: list[Any]

    _name = field_validator("name")(_not_blank)
    _text = field_validator("name", "description")(_storable)


class FormPatch(PathIdInput):
    name: FormName | None = None
    description: FormDescription | None = None
    disabled: bool | None = None
    elements: list[Any] | None = None

    @field_validator("name", "description", "disabled", "elements", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value

    _name = field_validator("name")(_not_blank)
    _text = field_validator("name", "description")(_storable)


class ResponseCheck(StrictInput):
    form_response: dict[str, Any]
