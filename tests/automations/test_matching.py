"""Conditions against ticket facts: each op, lists, answers, literal `contains`."""

from __future__ import annotations

from typing import Any

import pytest

from tekudasai.automations.rules import condition_holds, matches

FACTS: dict[str, Any] = {
    "status": "open",
    "priority": "high",
    "teamId": None,
    "formId": "it",
    "tags": ["Printer", "floor-2"],
    "summary": "The printer (floor 2) is on fire.*",
    "channel": "email",
    "reporter.email": "aiko@example.com",
    "answers": {"description": "Smoke!", "blank": "", "devices": ["laptop", "phone"]},
}


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("status", "eq", "open", True),
        ("status", "neq", "open", False),
        ("priority", "in", ["high", "urgent"], True),
        ("priority", "notIn", ["high"], False),
        ("teamId", "filled", False, True),
        ("teamId", "eq", "", True),
        ("tags", "eq", "printer", True),
        ("tags", "neq", "vip", True),
        ("tags", "in", ["VIP", "Floor-2"], True),
        ("tags", "notIn", ["vip"], True),
        ("tags", "contains", "FLOOR", True),
        ("tags", "filled", True, True),
        ("summary", "contains", "(floor 2)", True),  # literal: no pattern
        ("summary", "contains", "fire.*", True),
        ("summary", "contains", "f.re", False),
        ("summary", "contains", "PRINTER", True),
        ("answer.description", "eq", "Smoke!", True),
        ("answer.blank", "filled", False, True),
        ("answer.missing", "filled", True, False),
        ("answer.devices", "eq", "phone", True),
        ("reporter.email", "contains", "@EXAMPLE.com", True),
        ("channel", "in", ["web", "api"], False),
    ],
)
def test_each_op(field: str, op: str, value: Any, expected: bool) -> None:
    assert condition_holds({"field": field, "op": op, "value": value}, FACTS) is expected


def test_all_conditions_must_hold() -> None:
    both = [
        {"field": "status", "op": "eq", "value": "open"},
        {"field": "priority", "op": "eq", "value": "low"},
    ]
    assert matches(both[:1], FACTS) and not matches(both, FACTS)
    assert matches([], FACTS)
