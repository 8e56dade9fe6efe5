"""The pure engine: every element type, every rule, every showIf operator."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tekudasai.forms.engine import (
    ELEMENT_TYPES,
    TextField,
    dump_elements,
    parse_elements,
    validate_response,
)
from tekudasai.forms.errors import InvalidFormDefinition


def opts(*values: str) -> list[dict[str, str]]:
    return [{"id": f"o{i}", "label": v.title(), "value": v} for i, v in enumerate(values)]


ALL_TYPES: list[dict[str, Any]] = [
    {"type": "text-panel", "name": "intro", "content": "**Hello**"},
    {"type": "text-field", "name": "title", "label": "Title", "required": True, "maxLength": 10},
    {"type": "text-field", "name": "mail", "label": "Mail", "format": "email"},
    {"type": "textarea", "name": "body", "label": "Body", "minLength": 3},
    {"type": "dropdown", "name": "cat", "label": "Cat", "options": opts("a", "b")},
    {"type": "file-upload", "name": "file", "label": "File"},
    {"type": "number", "name": "qty", "label": "Qty", "min": 1, "max": 5},
    {"type": "date", "name": "when", "label": "When"},
    {"type": "checkbox", "name": "ok", "label": "OK", "required": True},
    {"type": "radio", "name": "size", "label": "Size", "options": opts("s", "m")},
    {"type": "multi-select", "name": "tags", "label": "Tags", "options": opts("x", "y", "z")},
]


def check(elements: list[dict[str, Any]], response: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """(the answers kept, errors by field); blanks are checked here and left out of the answers."""
    parsed = parse_elements(elements)
    result = validate_response(parsed, response)
    if isinstance(response, dict):
        # Every input element has a key, in form order (contract: "Stored answers").
        assert list(result.values) == [e.name for e in parsed if e.type != "text-panel"]
    kept = {name: value for name, value in result.values.items() if value != ""}
    return kept, {e["field"]: e["message"] for e in result.errors}


def definition_errors(elements: Any) -> dict[str, str]:
    with pytest.raises(InvalidFormDefinition) as caught:
        parse_elements(elements)
    assert caught.value.code == "VALIDATION_ERROR"
    return {e["field"]: e["message"] for e in caught.value.errors or []}


def test_every_type_parses_and_round_trips() -> None:
    parsed = parse_elements(ALL_TYPES)
    assert [e.type for e in parsed] == list(ELEMENT_TYPES[3:4]) + [
        t for t in (e["type"] for e in ALL_TYPES[1:])
    ]
    dumped = dump_elements(parsed)
    assert dump_elements(parse_elements(dumped)) == dumped
    assert dumped[1] == {
        "type": "text-field",
        "id": dumped[1]["id"],
        "name": "title",
        "label": "Title",
        "required": True,
        "placeholder": "",
        "format": "text",
        "maxLength": 10,
    }


def test_full_valid_response_keeps_known_answers_only() -> None:
    values, errors = check(
        ALL_TYPES,
        {
            "intro": "ignored",
            "title": "Broken",
            "mail": "a@intranet",
            "body": "abc",
            "cat": "b",
            "file": {"filename": "abcDEF_123-x", "originalName": "x.png"},
            "qty": 2.5,
            "when": "2026-02-28",
            "ok": True,
            "size": "m",
            "tags": ["z", "x", "z"],
            "unknown": "dropped",
        },
    )
    assert errors == {}
    assert values == {
        "title": "Broken",
        "mail": "a@intranet",
        "body": "abc",
        "cat": "b",
        "file": "abcDEF_123-x",
        "qty": 2.5,
        "when": "2026-02-28",
        "ok": True,
        "size": "m",
        "tags": ["z", "x"],
    }


@pytest.mark.parametrize(
    ("field", "answer", "message"),
    [
        ("title", "x" * 11, "Must be at most 10 characters"),
        ("title", 5, "Must be text"),
        ("mail", "not-an-email", "Must be a valid e-mail address"),
        ("mail", "a@b@c", "Must be a valid e-mail address"),
        ("body", "ab", "Must be at least 3 characters"),
        ("cat", "c", "Must be one of the options"),
        ("cat", ["a"], "Must be one of the options"),
        ("file", "../../etc/passwd", "Must be an uploaded file"),
        ("file", {"name": "x"}, "Must be an uploaded file"),
        ("qty", 0, "Must be at least 1"),
        ("qty", 6, "Must be at most 5"),
        ("qty", "7", "Must be at most 5"),
        ("qty", True, "Must be a number"),
        ("qty", "1e999", "Must be a number"),
        ("qty", "two", "Must be a number"),
        ("when", "2026-02-30", "Must be a date (YYYY-MM-DD)"),
        ("when", "20260228", "Must be a date (YYYY-MM-DD)"),
        ("ok", False, "Must be checked"),
        ("ok", "maybe", "Must be true or false"),
        ("size", "l", "Must be one of the options"),
        ("tags", ["x", "q"], "Must contain only the options"),
        ("tags", {"x": 1}, "Must be a list of options"),
    ],
)
def test_bad_answers(field: str, answer: Any, message: str) -> None:
    base = {"title": "t", "ok": True}
    values, errors = check(ALL_TYPES, {**base, field: answer})
    assert errors == {field: message}
    assert field not in values


def test_required_fields() -> None:
    values, errors = check(ALL_TYPES, {"title": "   "})
    assert errors == {"title": "This field is required", "ok": "This field is required"}
    assert values == {}
    elements = [
        {"type": t, "name": t.replace("-", ""), "label": "L", "required": True}
        | ({"options": opts("a")} if t in ("dropdown", "radio", "multi-select") else {})
        for t in ELEMENT_TYPES
        if t != "text-panel"
    ]
    _, errors = check(elements, {"multiselect": []})
    assert set(errors) == {e["name"] for e in elements}


def test_unanswered_and_hidden_elements_are_stored_as_blank_strings() -> None:
    elements = [
        {"type": "text-panel", "name": "intro", "content": "Hi"},
        {"type": "dropdown", "name": "kind", "label": "K", "options": opts("bug", "idea")},
        {"type": "text-field", "name": "steps", "label": "S",
         "showIf": {"field": "kind", "op": "eq", "value": "bug"}},
        {"type": "multi-select", "name": "tags", "label": "T", "options": opts("x")},
        {"type": "file-upload", "name": "shot", "label": "F"},
    ]  # fmt: skip
    result = validate_response(parse_elements(elements), {"kind": "idea", "steps": "1. 2."})
    assert result.errors == []
    assert result.values == {"kind": "idea", "steps": "", "tags": "", "shot": ""}
    assert list(result.values) == ["kind", "steps", "tags", "shot"]
    result = validate_response(parse_elements(elements), {"kind": "bug", "steps": "1. 2."})
    assert result.values == {"kind": "bug", "steps": "1. 2.", "tags": "", "shot": ""}


def test_string_answers_from_html_forms_are_normalised() -> None:
    values, errors = check(ALL_TYPES, {"title": "t", "ok": "on", "qty": " 3 ", "tags": "y"})
    assert errors == {}
    assert values == {"title": "t", "ok": True, "qty": 3, "tags": ["y"]}


def test_pattern_must_match_the_whole_answer() -> None:
    elements = [{"type": "text-field", "name": "code", "label": "C", "pattern": "[A-Z]{2}[0-9]{4}"}]
    assert check(elements, {"code": "AB1234"}) == ({"code": "AB1234"}, {})
    assert check(elements, {"code": "xAB1234"})[1] == {"code": "Does not have the required format"}
    assert check(elements, {"code": "AB12345"})[1] == {"code": "Does not have the required format"}


def test_hostile_pattern_is_refused_on_save() -> None:
    for pattern in ("(a|aa)+$", "(a|aa|aaa)*$", "((x|xx)+)+y"):
        errors = definition_errors([{"type": "text-field", "name": "f", "pattern": pattern}])
        assert errors == {"elements[0].pattern": "is too slow to check (nested repetition?)"}


def test_hostile_pattern_stored_earlier_is_bounded() -> None:
    # As if saved before the check on save existed: the timeout and budget still bound it.
    elements: list[Any] = [
        TextField.model_validate(
            {"type": "text-field", "name": f"f{i}", "label": "F", "pattern": "(a|aa)+$"}
        )
        for i in range(20)
    ]
    started = time.monotonic()
    result = validate_response(elements, {f"f{i}": "a" * 80 + "b" for i in range(20)})
    assert time.monotonic() - started < 2
    assert {e["message"] for e in result.errors} == {
        "The answer could not be checked against the required format"
    }


def test_response_must_be_an_object() -> None:
    assert check(ALL_TYPES, ["x"]) == ({}, {"formResponse": "Must be an object"})


LOGIC = [
    {"type": "dropdown", "name": "kind", "label": "Kind", "options": opts("bug", "idea", "other")},
    {"type": "multi-select", "name": "areas", "label": "Areas", "options": opts("ui", "api")},
    {"type": "checkbox", "name": "urgent", "label": "Urgent"},
    {"type": "text-field", "name": "eq", "label": "E", "required": True,
     "showIf": {"field": "kind", "op": "eq", "value": "bug"}},
    {"type": "text-field", "name": "neq", "label": "N", "required": True,
     "showIf": {"field": "kind", "op": "neq", "value": "bug"}},
    {"type": "text-field", "name": "in", "label": "I", "required": True,
     "showIf": {"field": "kind", "op": "in", "value": ["idea", "other"]}},
    {"type": "text-field", "name": "notIn", "label": "NI", "required": True,
     "showIf": {"field": "kind", "op": "notIn", "value": ["idea", "other"]}},
    {"type": "text-field", "name": "filled", "label": "F", "required": True,
     "showIf": {"field": "kind", "op": "filled"}},
    {"type": "text-field", "name": "empty", "label": "F", "required": True,
     "showIf": {"field": "kind", "op": "filled", "value": False}},
    {"type": "text-field", "name": "api", "label": "A", "required": True,
     "showIf": {"field": "areas", "op": "in", "value": ["api"]}},
    {"type": "text-field", "name": "urgentWhy", "label": "U", "required": True,
     "showIf": {"field": "urgent", "op": "eq", "value": True}},
    {"type": "text-field", "name": "chained", "label": "C", "required": True,
     "showIf": {"field": "eq", "op": "eq", "value": "yes"}},
]  # fmt: skip
ALL_LOGIC = {
    "eq": "yes", "neq": "x", "in": "x", "notIn": "x", "filled": "x", "empty": "x",
    "api": "x", "urgentWhy": "x", "chained": "x",
}  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "visible"),
    [
        ({"kind": "bug"}, {"eq", "notIn", "filled", "chained"}),
        ({"kind": "idea"}, {"neq", "in", "filled"}),
        ({}, {"neq", "notIn", "empty"}),
        ({"kind": "nonsense"}, {"neq", "notIn", "empty"}),
        ({"areas": ["ui", "api"], "urgent": True}, {"neq", "notIn", "empty", "api", "urgentWhy"}),
        ({"areas": ["ui"], "urgent": False}, {"neq", "notIn", "empty"}),
    ],
)
def test_show_if_operators(answers: dict[str, Any], visible: set[str]) -> None:
    values, errors = check(LOGIC, {**answers, **ALL_LOGIC})
    shown = {k for k in values if k in ALL_LOGIC}
    assert shown == visible
    # Hidden elements are not required: with no answers only the visible ones complain.
    _, errors = check(LOGIC, answers)
    assert set(errors) - {"kind"} == visible - {"chained"}


def test_bad_definitions() -> None:
    errors = definition_errors(
        [
            {"type": "spreadsheet", "name": "a"},
            {"name": "b"},
            "text",
            {"type": "dropdown", "name": "c", "options": []},
            {"type": "number", "name": "d", "min": "x"},
            {"type": "text-field", "name": "e", "showIf": {"field": "a", "op": "like"}},
        ]
    )
    assert errors == {
        "elements[0]": "unknown element type 'spreadsheet'",
        "elements[1]": "element type is missing",
        "elements[2]": "must be an object",
        "elements[3].options": "List should have at least 1 item after validation, not 0",
        "elements[4].min": "Input should be a valid integer",
        "elements[5].showIf.op": errors["elements[5].showIf.op"],
    }
    assert definition_errors({"a": 1}) == {"elements": "must be a list"}


def test_cross_element_rules() -> None:
    errors = definition_errors(
        [
            {"type": "text-field", "name": "a", "minLength": 5, "maxLength": 3, "pattern": "(["},
            {"type": "text-field", "name": "a"},
            {"type": "text-field", "name": ""},
            {"type": "text-field", "name": "has space"},
            {"type": "dropdown", "name": "d", "options": opts("x", "x")},
            {"type": "radio", "name": "r", "options": [{"label": "A", "value": " "}]},
            {"type": "number", "name": "n", "min": 5, "max": 1},
            {"type": "textarea", "name": "t", "maxLength": 10**9},
            {"type": "text-field", "name": "s1", "showIf": {"field": "later", "op": "filled"}},
            {
                "type": "text-field",
                "name": "s2",
                "showIf": {"field": "d", "op": "eq", "value": "q"},
            },
            {
                "type": "text-field",
                "name": "s3",
                "showIf": {"field": "a", "op": "in", "value": "x"},
            },
            {"type": "text-field", "name": "s4", "showIf": {"field": "a", "op": "eq"}},
            {"type": "text-panel", "name": "p", "content": "x"},
            {"type": "text-field", "name": "s6", "showIf": {"field": "p", "op": "filled"}},
            {"type": "text-field", "name": "s7", "showIf": {"field": "s7", "op": "filled"}},
            {"type": "text-field", "name": "later"},
        ]
    )
    assert errors["elements[0].minLength"] == "must not be greater than maxLength"
    assert errors["elements[0].pattern"] == "is not a valid regular expression"
    assert errors["elements[1].name"] == "duplicate name 'a'"
    assert errors["elements[2].name"] == "must not be empty"
    assert "elements[3].name" in errors
    assert errors["elements[4].options"] == "option values must be unique"
    assert errors["elements[5].options"] == "option values must not be empty"
    assert errors["elements[6].min"] == "must not be greater than max"
    assert errors["elements[7].maxLength"] == "must be at most 50000"
    assert errors["elements[8].showIf"] == "field 'later' must name an earlier input element"
    assert errors["elements[9].showIf"] == "value 'q' is not an option of 'd'"
    assert errors["elements[10].showIf"] == "'in' needs a non-empty list of values"
    assert errors["elements[11].showIf"] == "'eq' needs a single value"
    assert errors["elements[13].showIf"] == "field 'p' must name an earlier input element"
    assert errors["elements[14].showIf"] == "field 's7' must name an earlier input element"
    assert len(errors) == 15
