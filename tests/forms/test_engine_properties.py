"""Property tests: random responses never crash the engine, and what it accepts re-validates."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tekudasai.forms.engine import parse_elements, validate_response
from tekudasai.forms.errors import InvalidFormDefinition
from tests.forms.test_engine import ALL_TYPES, LOGIC, opts

FORM = parse_elements(
    [{**e, "required": False} if e.get("name") == "ok" else e for e in ALL_TYPES]
    + [
        {**e, "name": f"l_{e['name']}"}
        | (
            {"showIf": {**e["showIf"], "field": f"l_{e['showIf']['field']}"}}
            if "showIf" in e
            else {}
        )
        for e in LOGIC
    ]
    + [{"type": "text-field", "name": "code", "label": "C", "pattern": "[A-Z]{2}[0-9]{2}"}]
)
NAMES = [e.name for e in FORM if e.name]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
plausible = st.sampled_from(
    [
        "a", "b", "s", "m", "x", "y", "z", "bug", "idea", "other", "ui", "api", "AB12",
        "2026-01-31", "2026-02-30", "someone@intranet", "3", "1.5", "on", "true", "yes", "",
        "   ", "abcDEF_123", "../../x", 1, 2.5, 6, -1, True, False, None, ["x", "z"], ["ui"],
        {"filename": "abc123"}, {"filename": 5},
    ]
)  # fmt: skip
responses = st.dictionaries(
    st.sampled_from([*NAMES, "unknown", "__proto__"]) | st.text(max_size=6),
    plausible | json_values,
    max_size=len(NAMES) + 3,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses)
def test_random_responses_never_crash_and_accepted_answers_revalidate(
    response: dict[str, Any],
) -> None:
    result = validate_response(FORM, response)
    assert set(result.values) <= set(NAMES)
    assert all(set(e) == {"field", "message"} for e in result.errors)
    # Every input has a key; a refused answer is never kept (it is a blank).
    assert list(result.values) == [e.name for e in FORM if e.is_input]
    assert all(result.values[e["field"]] == "" for e in result.errors)
    if result.ok:
        again = validate_response(FORM, result.values)
        assert again.ok and again.values == result.values


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_any_json_as_a_response_is_answered(response: Any) -> None:
    result = validate_response(FORM, response)
    assert isinstance(result.values, dict) and isinstance(result.errors, list)


element_dicts = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
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
                "nope",
            ]
        ),
        "name": st.sampled_from(["a", "b", "c", "", "bad name"]) | st.text(max_size=5),
    },
    optional={
        "label": st.text(max_size=5) | json_values,
        "required": st.booleans() | json_values,
        "options": st.just(opts("a", "b")) | st.lists(json_values, max_size=3),
        "minLength": st.integers(-2, 20) | json_values,
        "maxLength": st.integers(-2, 20) | json_values,
        "min": st.floats() | st.integers() | json_values,
        "max": st.floats() | st.integers() | json_values,
        "pattern": st.sampled_from(["[a-z]+", "(", "a{2,", "(a|aa)+$"]) | st.text(max_size=6),
        "showIf": st.fixed_dictionaries(
            {
                "field": st.sampled_from(["a", "b", "c", "zz"]),
                "op": st.sampled_from(["eq", "neq", "in", "notIn", "filled", "like"]),
            },
            optional={"value": json_values},
        )
        | json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(element_dicts | json_values, max_size=6), responses)
def test_random_definitions_parse_or_fail_cleanly(raw: list[Any], response: Any) -> None:
    try:
        elements = parse_elements(raw)
    except InvalidFormDefinition as exc:
        assert exc.errors and all(e["field"].startswith("elements") for e in exc.errors)
        return
    result = validate_response(elements, response)
    if result.ok:
        assert validate_response(elements, result.values).values == result.values
