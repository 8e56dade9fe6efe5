"""The form engine: element definitions (a discriminated union on `type`) and one validator for
responses, shared by the API and the web UI. Pure Python: no database, no HTTP."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal

import regex
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from tekudasai.core.ids import new_id
from tekudasai.forms.errors import InvalidFormDefinition

MAX_ELEMENTS = 200
MAX_OPTIONS = 500
MAX_LABEL = 500
MAX_PATTERN = 500
MAX_PANEL_CONTENT = 20_000
TEXT_FIELD_CAP = 5_000
TEXTAREA_CAP = 50_000
MAX_NUMBER = 1e15
# A pattern runs under a timeout (the `regex` package checks it inside its matching loop), and
# all pattern checks of one response share a budget: a hostile pattern costs at most this much.
PATTERN_TIMEOUT_S = 0.02
PATTERN_BUDGET_S = 0.05

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
UPLOAD_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
NUMBER_RE = re.compile(r"^\s*-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$")
# Syntax only; internal domains (.local, .lan, a bare company domain) are valid on intranets.
EMAIL_RE = re.compile(
    r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)
# PostgreSQL's jsonb refuses NUL characters and unpaired surrogates: keep them out of storage.
UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
TRUE_STRINGS = frozenset({"true", "on", "1", "yes"})
FALSE_STRINGS = frozenset({"false", "off", "0", "no"})

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
# Saving a pattern tries it on strings that make backtracking explode; a pattern that cannot
# answer within the probe timeout is refused, so admins learn at once (answers stay bounded by
# the timeout and budget above either way, e.g. for definitions stored before this check).
PATTERN_PROBES = ("a" * 64 + "!", "0" * 64 + "!", " " * 64 + "!", "aA0_-. @" * 8 + "\x01")
PATTERN_PROBE_TIMEOUT_S = 0.01


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=False
    )


class Option(_Model):
    id: Annotated[str, Field(min_length=1, max_length=64)] = Field(default_factory=new_id)
    label: Annotated[str, Field(max_length=MAX_LABEL)]
    value: Annotated[str, Field(max_length=200)]


class ShowIf(_Model):
    field: Annotated[str, Field(max_length=64)]
    op: Literal["eq", "neq", "in", "notIn", "filled"]
    value: Scalar | list[Scalar] | None = None


# What a `mapsTo` element's answer may set on the ticket, and the values it takes.
MAPPABLE: dict[str, frozenset[str]] = {
    "priority": frozenset({"low", "normal", "high", "urgent"}),
}


class _Element(_Model):
    id: Annotated[str, Field(min_length=1, max_length=64)] = Field(default_factory=new_id)
    name: Annotated[str, Field(max_length=64)]
    show_if: ShowIf | None = None
    # The answer also sets this ticket field at creation (a dropdown or radio of its values).
    maps_to: Literal["priority"] | None = None

    @property
    def is_input(self) -> bool:
        return True

    def clean(self, raw: Any, ctx: _Context) -> Any:
        """The stored form of an answer that is present; raise _Invalid(message) otherwise."""
        raise NotImplementedError

    def definition_errors(self) -> list[tuple[str, str]]:
        """(key, message) problems of this element alone, found after parsing."""
        return []


class _Labelled(_Element):
    label: Annotated[str, Field(max_length=MAX_LABEL)] = ""
    required: bool = False


class _Text(_Labelled):
    placeholder: Annotated[str, Field(max_length=MAX_LABEL)] = ""
    min_length: Annotated[int, Field(ge=0)] | None = None
    max_length: Annotated[int, Field(ge=1)] | None = None
    pattern: Annotated[str, Field(min_length=1, max_length=MAX_PATTERN)] | None = None
    CAP: ClassVar[int] = TEXT_FIELD_CAP

    # cached_property keeps derived data in the instance dict: read on every answer, it must be
    # cheap (pydantic private attributes go through a slow __getattr__).
    @cached_property
    def compiled_pattern(self) -> Any:
        if self.pattern is None:
            return None
        try:
            return regex.compile(self.pattern)
        except Exception:  # regex raises several types for malformed patterns
            return None

    def definition_errors(self) -> list[tuple[str, str]]:
        problems = []
        if self.min_length is not None and self.min_length > self.CAP:
            problems.append(("minLength", f"must be at most {self.CAP}"))
        if self.max_length is not None and self.max_length > self.CAP:
            problems.append(("maxLength", f"must be at most {self.CAP}"))
        if (
            self.min_length is not None
            and self.max_length is not None
            and self.min_length > self.max_length
        ):
            problems.append(("minLength", "must not be greater than maxLength"))
        if self.pattern is not None:
            if self.compiled_pattern is None:
                problems.append(("pattern", "is not a valid regular expression"))
            elif not _fast_enough(self.compiled_pattern):
                problems.append(("pattern", "is too slow to check (nested repetition?)"))
        return problems

    def clean(self, raw: Any, ctx: _Context) -> Any:
        if not isinstance(raw, str):
            raise _Invalid("Must be text")
        limit = self.max_length if self.max_length is not None else self.CAP
        if len(raw) > limit:
            raise _Invalid(f"Must be at most {limit} characters")
        if self.min_length is not None and len(raw) < self.min_length:
            raise _Invalid(f"Must be at least {self.min_length} characters")
        if not storable_text(raw):
            raise _Invalid("Must not contain NUL characters or broken Unicode")
        pattern = self.compiled_pattern
        if pattern is not None and not ctx.matches(pattern, raw):
            raise _Invalid("Does not have the required format")
        return raw


def _fast_enough(pattern: Any) -> bool:
    # Runs of each literal character of the pattern too: "(x+x+)+y" explodes on "xxx…".
    literals = dict.fromkeys(c for c in pattern.pattern if c.isalnum() or c in " _-.@")
    probes = PATTERN_PROBES + tuple(c * 64 + "\x01" for c in list(literals)[:16])
    try:
        for probe in probes:
            pattern.fullmatch(probe, timeout=PATTERN_PROBE_TIMEOUT_S)
            pattern.search(probe, timeout=PATTERN_PROBE_TIMEOUT_S)
    except TimeoutError:
        return False
    return True


class TextField(_Text):
    type: Literal["text-field"]
    format: Literal["text", "email"] = "text"

    def clean(self, raw: Any, ctx: _Context) -> Any:
        value = super().clean(raw, ctx)
        if self.format == "email" and (len(value) > 254 or not EMAIL_RE.match(value)):
            raise _Invalid("Must be a valid e-mail address")
        return value


class Textarea(_Text):
    type: Literal["textarea"]
    CAP: ClassVar[int] = TEXTAREA_CAP


class _Choice(_Labelled):
    options: Annotated[list[Option], Field(min_length=1, max_length=MAX_OPTIONS)]

    @cached_property
    def option_values(self) -> frozenset[str]:
        return frozenset(o.value for o in self.options)

    def definition_errors(self) -> list[tuple[str, str]]:
        problems = []
        values = [o.value for o in self.options]
        if any(not v.strip() for v in values):
            problems.append(("options", "option values must not be empty"))
        if len(set(values)) != len(values):
            problems.append(("options", "option values must be unique"))
        ids = [o.id for o in self.options]
        if len(set(ids)) != len(ids):
            problems.append(("options", "option ids must be unique"))
        return problems

    def clean(self, raw: Any, ctx: _Context) -> Any:
        if not isinstance(raw, str) or raw not in self.option_values:
            raise _Invalid("Must be one of the options")
        return raw


class Dropdown(_Choice):
    type: Literal["dropdown"]


class Radio(_Choice):
    type: Literal["radio"]


class MultiSelect(_Choice):
    type: Literal["multi-select"]

    def clean(self, raw: Any, ctx: _Context) -> Any:
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list):
            raise _Invalid("Must be a list of options")
        chosen: list[str] = []
        for item in items:
            if not isinstance(item, str) or item not in self.option_values:
                raise _Invalid("Must contain only the options")
            if item not in chosen:
                chosen.append(item)
        return chosen


class TextPanel(_Element):
    type: Literal["text-panel"]
    name: Annotated[str, Field(max_length=64)] = ""
    content: Annotated[str, Field(max_length=MAX_PANEL_CONTENT)] = ""

    @property
    def is_input(self) -> bool:
        return False


class FileUpload(_Labelled):
    type: Literal["file-upload"]

    def clean(self, raw: Any, ctx: _Context) -> Any:
        ref = raw.get("filename") if isinstance(raw, dict) else raw
        if not isinstance(ref, str) or not UPLOAD_ID_RE.match(ref):
            raise _Invalid("Must be an uploaded file")
        return ref


class Number(_Labelled):
    type: Literal["number"]
    placeholder: Annotated[str, Field(max_length=MAX_LABEL)] = ""
    min: StrictInt | StrictFloat | None = None
    max: StrictInt | StrictFloat | None = None

    def definition_errors(self) -> list[tuple[str, str]]:
        problems = []
        for key, bound in (("min", self.min), ("max", self.max)):
            if bound is not None and (not math.isfinite(bound) or abs(bound) > MAX_NUMBER):
                problems.append((key, "must be a finite number of reasonable size"))
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append(("min", "must not be greater than max"))
        return problems

    def clean(self, raw: Any, ctx: _Context) -> Any:
        value: int | float
        if isinstance(raw, bool):
            raise _Invalid("Must be a number")
        if isinstance(raw, int | float):
            value = raw
        elif isinstance(raw, str) and len(raw) <= 40 and NUMBER_RE.match(raw):
            text = raw.strip()
            value = int(text) if text.lstrip("-").isdigit() else float(text)
        else:
            raise _Invalid("Must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise _Invalid("Must be a number")
        if abs(value) > MAX_NUMBER:
            raise _Invalid("Number is too large")
        if self.min is not None and value < self.min:
            raise _Invalid(f"Must be at least {_show(self.min)}")
        if self.max is not None and value > self.max:
            raise _Invalid(f"Must be at most {_show(self.max)}")
        return value


class Date(_Labelled):
    type: Literal["date"]

    def clean(self, raw: Any, ctx: _Context) -> Any:
        if not isinstance(raw, str) or not DATE_RE.match(raw):
            raise _Invalid("Must be a date (YYYY-MM-DD)")
        try:
            date.fromisoformat(raw)
        except ValueError:
            raise _Invalid("Must be a date (YYYY-MM-DD)") from None
        return raw


class Checkbox(_Labelled):
    type: Literal["checkbox"]

    def clean(self, raw: Any, ctx: _Context) -> Any:
        if isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and raw.lower() in TRUE_STRINGS | FALSE_STRINGS:
            value = raw.lower() in TRUE_STRINGS
        else:
            raise _Invalid("Must be true or false")
        if self.required and not value:
            raise _Invalid("Must be checked")
        return value


Element = Annotated[
    TextField
    | Textarea
    | Dropdown
    | TextPanel
    | FileUpload
    | Number
    | Date
    | Checkbox
    | Radio
    | MultiSelect,
    Field(discriminator="type"),
]
ELEMENT_TYPES = (
    "text-field",
    "textarea",
    "dropdown",
    "text-panel",
    "file-upload",
    "number",
    "date",
    "checkbox",
    "radio",
    "multi-select",
)
_element_adapter: TypeAdapter[Element] = TypeAdapter(Element)


@dataclass
class ValidatedResponse:
    values: dict[str, Any]
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


class _Context:
    """Per-response state: the time left for pattern checks."""

    def __init__(self, budget: float) -> None:
        self.deadline = time.monotonic() + budget

    def matches(self, pattern: Any, text: str) -> bool:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Invalid("The answer could not be checked against the required format")
        try:
            return pattern.fullmatch(text, timeout=min(PATTERN_TIMEOUT_S, left)) is not None
        except TimeoutError:
            raise _Invalid("The answer could not be checked against the required format") from None


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _field_path(index: int, loc: tuple[Any, ...]) -> str:
    path = f"elements[{index}]"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ELEMENT_TYPES or part in _UNION_TAGS:
            continue  # a discriminator's or a union member's tag, not a key of the element
        else:
            path += f".{part}"
    return path


_UNION_TAGS = frozenset({"int", "float", "str", "bool", "list[union[bool,int,float,str]]"})


def _pydantic_errors(index: int, exc: ValidationError) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        kind = error["type"]
        if kind == "union_tag_invalid":
            tag = error.get("ctx", {}).get("tag", "")
            message = f"unknown element type '{str(tag)[:40]}'"
        elif kind == "union_tag_not_found":
            message = "element type is missing"
        elif kind in ("model_attributes_type", "model_type"):
            message = "must be an object"
        else:
            message = str(error["msg"])
        path = _field_path(index, error["loc"])
        if path not in seen:  # a union reports one error per member; the first says enough
            seen.add(path)
            errors.append({"field": path, "message": message})
    return errors


def storable_text(text: str) -> bool:
    """Whether PostgreSQL can store the string in jsonb/text (no NUL, no lone surrogate)."""
    return UNSTORABLE_RE.search(text) is None


def _unstorable_path(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return None if storable_text(value) else path
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unstorable_path(key, path) or _unstorable_path(item, f"{path}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _unstorable_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def parse_elements(raw: Any) -> list[Element]:
    """Parse and check a form definition; raise InvalidFormDefinition with per-element errors."""
    if not isinstance(raw, list):
        raise InvalidFormDefinition(errors=[{"field": "elements", "message": "must be a list"}])
    if len(raw) > MAX_ELEMENTS:
        raise InvalidFormDefinition(
            errors=[{"field": "elements", "message": f"at most {MAX_ELEMENTS} elements"}]
        )
    elements: list[Element] = []
    errors: list[dict[str, str]] = []
    for index, item in enumerate(raw):
        bad = _unstorable_path(item, f"elements[{index}]")
        if bad:
            errors.append({"field": bad, "message": "NUL, broken Unicode or a non-finite number"})
            continue
        try:
            elements.append(_element_adapter.validate_python(item))
        except ValidationError as exc:
            errors.extend(_pydantic_errors(index, exc))
    if not errors:
        errors = definition_errors(elements)
    if errors:
        first = errors[0]
        raise InvalidFormDefinition(f"{first['field']}: {first['message']}", errors=errors)
    return elements


def definition_errors(elements: list[Element]) -> list[dict[str, str]]:
    """Rules beyond one field: sane bounds, unique names and ids, showIf on an earlier input."""
    errors: list[dict[str, str]] = []
    earlier: dict[str, Element] = {}
    names: set[str] = set()
    ids: set[str] = set()
    mapped: set[str] = set()

    def add(index: int, key: str, message: str) -> None:
        errors.append({"field": f"elements[{index}].{key}", "message": message})

    for index, element in enumerate(elements):
        for key, message in element.definition_errors():
            add(index, key, message)
        if element.id in ids:
            add(index, "id", f"duplicate id '{element.id}'")
        ids.add(element.id)
        if element.is_input or element.name:
            if not element.name.strip():
                add(index, "name", "must not be empty")
            elif not NAME_RE.match(element.name):
                add(index, "name", "use letters, digits, '_' or '-' (at most 64)")
            elif element.name in names:
                add(index, "name", f"duplicate name '{element.name}'")
            names.add(element.name)
        if element.maps_to is not None:
            problem = _maps_to_problem(element, mapped)
            if problem:
                add(index, "mapsTo", problem)
            mapped.add(element.maps_to)
        if element.show_if is not None:
            problem = _show_if_problem(element.show_if, earlier)
            if problem:
                add(index, "showIf", problem)
        if element.is_input and element.name not in earlier:
            earlier[element.name] = element
    return errors


def _maps_to_problem(element: Element, mapped: set[str]) -> str | None:
    target = element.maps_to
    assert target is not None
    if target in mapped:
        return f"only one element may map to {target}"
    if not isinstance(element, Dropdown | Radio):
        return f"only a dropdown or radio element may map to {target}"
    allowed = MAPPABLE[target]
    wrong = sorted(v for v in element.option_values if v not in allowed)
    if wrong:
        return f"option value {wrong[0]!r} is not a {target} ({', '.join(sorted(allowed))})"
    return None


def _show_if_problem(rule: ShowIf, earlier: dict[str, Element]) -> str | None:
    target = earlier.get(rule.field)
    if target is None:
        return f"field '{rule.field[:64]}' must name an earlier input element"
    if rule.op == "filled":
        if rule.value is not None and not isinstance(rule.value, bool):
            return "value of 'filled' must be true, false or absent"
        return None
    if rule.op in ("eq", "neq"):
        if rule.value is None or isinstance(rule.value, list):
            return f"'{rule.op}' needs a single value"
        values = [rule.value]
    else:
        if not isinstance(rule.value, list) or not rule.value:
            return f"'{rule.op}' needs a non-empty list of values"
        values = rule.value
    if isinstance(target, _Choice):
        unknown = [v for v in values if not isinstance(v, str) or v not in target.option_values]
        if unknown:
            return f"value {unknown[0]!r} is not an option of '{target.name}'"
    return None


def _is_empty(raw: Any) -> bool:
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    return isinstance(raw, list | dict) and not raw


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; an answer of `true` must not satisfy `eq 1`.
    return a == b and isinstance(a, bool) == isinstance(b, bool)


Condition = Callable[[dict[str, Any]], bool]


def _compile_rule(rule: ShowIf) -> Condition:
    field_name, expected = rule.field, rule.value
    if rule.op == "filled":
        wanted = True if expected is None else expected
        return lambda values: (not _is_empty(values.get(field_name))) == wanted
    negate = rule.op in ("neq", "notIn")
    if rule.op in ("eq", "neq"):

        def equal(values: dict[str, Any]) -> bool:
            current = values.get(field_name)
            hit = _same(current, expected) or (
                isinstance(current, list) and any(_same(c, expected) for c in current)
            )
            return hit != negate

        return equal
    options = expected if isinstance(expected, list) else []

    def member(values: dict[str, Any]) -> bool:
        current = values.get(field_name)
        items = current if isinstance(current, list) else [current]
        hit = any(_same(item, option) for item in items for option in options)
        return hit != negate

    return member


class FormPlan:
    """Parsed elements prepared for validating many responses (what each step needs, once)."""

    __slots__ = ("elements", "input_names", "priority_name", "steps")

    def __init__(self, elements: list[Element]) -> None:
        self.elements = elements
        self.input_names = tuple(e.name for e in elements if e.is_input)
        # The answer that sets the ticket's priority at creation, if any.
        self.priority_name = next((e.name for e in elements if e.maps_to == "priority"), None)
        self.steps: tuple[tuple[str, bool, Condition | None, Any], ...] = tuple(
            (
                e.name,
                isinstance(e, _Labelled) and e.required,
                _compile_rule(e.show_if) if e.show_if is not None else None,
                e.clean,
            )
            for e in elements
            if e.is_input
        )


def validate_response(
    elements: list[Element] | FormPlan,
    response: Any,
    *,
    pattern_budget: float = PATTERN_BUDGET_S,
) -> ValidatedResponse:
    """Check a response against the elements in order. The stored answers have a key for every
    input element (every element but text panels), in form order: a visible answer as cleaned,
    an unanswered or hidden one as `""` (the original's shape; its clients read every answer as
    a string or an upload object and break on a missing key)."""
    if not isinstance(response, dict):
        return ValidatedResponse({}, [{"field": "formResponse", "message": "Must be an object"}])
    plan = elements if isinstance(elements, FormPlan) else FormPlan(elements)
    ctx = _Context(pattern_budget)
    values: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for name, required, condition, clean in plan.steps:
        if condition is not None and not condition(values):
            continue
        raw = response.get(name)
        if _is_empty(raw):
            if required:
                errors.append({"field": name, "message": "This field is required"})
            continue
        try:
            values[name] = clean(raw, ctx)
        except _Invalid as invalid:
            errors.append({"field": name, "message": invalid.message})
    # Conditions above read `values` (answers only): a blank must not satisfy `eq ""`.
    return ValidatedResponse({name: values.get(name, "") for name in plan.input_names}, errors)


def mapped_priority(plan: FormPlan, cleaned: dict[str, Any]) -> str | None:
    """The priority a validated response chooses (a `mapsTo: priority` answer), or None."""
    if plan.priority_name is None:
        return None
    value = cleaned.get(plan.priority_name)
    return value if isinstance(value, str) and value in MAPPABLE["priority"] else None


def dump_elements(elements: list[Element]) -> list[dict[str, Any]]:
    """The JSON form of parsed elements (camelCase, defaults filled, unset optionals left out)."""
    dumped = []
    for element in elements:
        data = element.model_dump(by_alias=True, exclude_none=True, mode="json")
        dumped.append({"type": data.pop("type"), **data})
    return dumped
