"""Validation cost per response for a 50-element form (pure engine, no database).

Run: PYTHONPATH=src python bench/forms_bench.py [--seconds 2]"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from tekudasai.forms.engine import FormPlan, parse_elements, validate_response


def options(n: int) -> list[dict[str, str]]:
    return [{"id": f"o{i}", "label": f"Option {i}", "value": f"v{i}"} for i in range(n)]


def build_form() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Five of each of the ten types: rules on text, ranges on numbers, showIf on a fifth."""
    elements: list[dict[str, Any]] = []
    answers: dict[str, Any] = {}
    text_variants = [
        {"label": "Title", "required": True, "minLength": 3, "maxLength": 120},
        {"label": "Mail", "format": "email"},
        {"label": "Code", "pattern": "[A-Z]{2}-[0-9]{4}"},
    ]
    text_answers = ["Printer on fire", "a.b@corp.local", "AB-1234"]
    for i in range(5):
        elements += [
            {"type": "text-panel", "name": f"panel{i}", "content": f"**Part {i}**"},
            {"type": "dropdown", "name": f"kind{i}", "label": "Kind", "options": options(8),
             "required": True},
            {"type": "text-field", "name": f"text{i}", **text_variants[i % 3],
             "showIf": {"field": f"kind{i}", "op": "neq", "value": "v7"}},
            {"type": "textarea", "name": f"body{i}", "label": "Body", "maxLength": 5000,
             "showIf": {"field": f"kind{i}", "op": "in", "value": ["v1", "v2", "v3"]}},
            {"type": "number", "name": f"qty{i}", "label": "Qty", "min": 0, "max": 1000},
            {"type": "date", "name": f"when{i}", "label": "When",
             "showIf": {"field": f"qty{i}", "op": "filled"}},
            {"type": "radio", "name": f"size{i}", "label": "Size", "options": options(4)},
            {"type": "multi-select", "name": f"tags{i}", "label": "Tags", "options": options(10),
             "showIf": {"field": f"size{i}", "op": "notIn", "value": ["v3"]}},
            {"type": "checkbox", "name": f"agree{i}", "label": "Agree", "required": True},
            {"type": "file-upload", "name": f"file{i}", "label": "File"},
        ]  # fmt: skip
        answers |= {
            f"kind{i}": "v2", f"text{i}": text_answers[i % 3],
            f"body{i}": "Steps to reproduce " * 20, f"qty{i}": 12,
            f"when{i}": "2026-03-01", f"size{i}": "v1", f"tags{i}": ["v1", "v5", "v9"],
            f"agree{i}": True, f"file{i}": "Zk3pQ9x_abcdefghijklmnopqrstuvwx", "extra": "dropped",
        }  # fmt: skip
    return elements[:50], answers


def per_call(fn: Callable[[], object], seconds: float) -> tuple[float, float, int]:
    """(wall µs, CPU µs, calls): CPU time is what other load on a shared machine disturbs least."""
    calls, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(50):
            fn()
        calls += 50
    cpu = time.process_time() - cpu_started
    return elapsed / calls * 1e6, cpu / calls * 1e6, calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    raw, answers = build_form()
    elements = parse_elements(raw)
    counts: dict[str, int] = {}
    for element in elements:
        counts[element.type] = counts.get(element.type, 0) + 1
    good = validate_response(elements, answers)
    assert good.ok, good.errors
    bad = {k: (v if not k.startswith(("qty", "size")) else "x") for k, v in answers.items()}
    assert not validate_response(elements, bad).ok
    print(f"form: {len(elements)} elements {json.dumps(counts)}; {len(good.values)} answers kept")
    plan = FormPlan(elements)
    for label, fn in (
        ("validate_response, valid answers (plan)", lambda: validate_response(plan, answers)),
        ("validate_response, 10 bad answers (plan)", lambda: validate_response(plan, bad)),
        ("validate_response, valid answers", lambda: validate_response(elements, answers)),
        ("validate_response, 10 bad answers", lambda: validate_response(elements, bad)),
        ("validate_response, empty response", lambda: validate_response(elements, {})),
        ("parse_elements (definition check on save)", lambda: parse_elements(raw)),
    ):
        wall, cpu, calls = per_call(fn, args.seconds)
        print(f"{label:45s} {wall:9.1f} µs wall {cpu:9.1f} µs CPU per call  ({calls} calls)")


if __name__ == "__main__":
    main()
