"""What an automation may say, checked before it is stored, and how its conditions match.

Conditions compare a field of the ticket with a value:
- fields: status, priority, teamId, formId, tags, summary, channel, reporter.email, and
  `answer.<name>` (an answer of the ticket's form);
- ops: eq, neq (one string), in, notIn (a list), contains (a string, matched literally and
  case-insensitively: never a pattern), filled (true or false).
On `tags` (a list) eq/neq/in/notIn ask whether the ticket has the tag(s); contains looks in each.

Actions name what they change; references (teams, users, canned responses, webhooks) are
checked here, and re-checked when the action runs (a reference deleted since is skipped and
logged, never a failed ticket change).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from tekudasai.tickets.models import TicketPriority, TicketStatus
from tekudasai.tickets.service import MAX_TAG_LENGTH, normal_tag

FIELDS = (
    "status",
    "priority",
    "teamId",
    "formId",
    "tags",
    "summary",
    "channel",
    "reporter.email",
)
ANSWER_PREFIX = "answer."
_ANSWER_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
OPS = ("eq", "neq", "in", "notIn", "contains", "filled")
ACTIONS = (
    "set_priority",
    "set_status",
    "set_team",
    "assign",
    "add_tags",
    "remove_tags",
    "add_internal_note",
    "reply",
    "notify",
    "webhook",
)
STRATEGIES = ("round_robin", "least_open")
MAX_CONDITIONS = 20
MAX_ACTIONS = 20
MAX_VALUES = 100
MAX_TAGS = 20
MAX_NOTE = 20_000
MAX_IDLE_HOURS = 24 * 366


@dataclass(frozen=True)
class References:
    """Which referenced ids exist (each a lookup of the ids given); the service supplies them
    from the database so this module stays free of queries."""

    teams: Callable[[list[str]], Awaitable[set[str]]]
    staff: Callable[[list[str]], Awaitable[set[str]]]
    canned: Callable[[list[str]], Awaitable[set[str]]]
    webhooks: Callable[[list[str]], Awaitable[set[str]]]
    answer_names: Callable[[], Awaitable[set[str]]]


class Problems:
    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 1000


def _is_text_list(value: Any) -> TypeGuard[list[str]]:
    return (
        isinstance(value, list)
        and 0 < len(value) <= MAX_VALUES
        and all(_is_text(item) for item in value)
    )


async def check_conditions(
    conditions: Sequence[Mapping[str, Any]], refs: References, problems: Problems
) -> list[dict[str, Any]]:
    if len(conditions) > MAX_CONDITIONS:
        problems.add("conditions", f"at most {MAX_CONDITIONS}")
        return []
    checked: list[dict[str, Any]] = []
    answers: set[str] | None = None
    for n, condition in enumerate(conditions):
        where = f"conditions[{n}]"
        field, op, value = condition.get("field"), condition.get("op"), condition.get("value")
        if not isinstance(field, str):
            problems.add(f"{where}.field", "missing")
            continue
        if field.startswith(ANSWER_PREFIX):
            name = field.removeprefix(ANSWER_PREFIX)
            answers = answers if answers is not None else await refs.answer_names()
            if not _ANSWER_NAME.fullmatch(name) or name not in answers:
                problems.add(f"{where}.field", f"no form has an answer named {name!r}")
                continue
        elif field not in FIELDS:
            problems.add(f"{where}.field", "not a field automations know")
            continue
        if op not in OPS:
            problems.add(f"{where}.op", f"one of {', '.join(OPS)}")
            continue
        if op in ("eq", "neq", "contains") and not _is_text(value):
            problems.add(f"{where}.value", "a text of 1 to 1000 characters")
            continue
        if op in ("in", "notIn") and not _is_text_list(value):
            problems.add(f"{where}.value", f"a list of 1 to {MAX_VALUES} texts")
            continue
        if op == "filled" and not isinstance(value, bool):
            problems.add(f"{where}.value", "true or false")
            continue
        checked.append({"field": field, "op": op, "value": value})
    return checked


async def check_actions(
    actions: Sequence[Mapping[str, Any]], refs: References, problems: Problems
) -> list[dict[str, Any]]:
    if not actions:
        problems.add("actions", "at least one action")
        return []
    if len(actions) > MAX_ACTIONS:
        problems.add("actions", f"at most {MAX_ACTIONS}")
        return []
    checked: list[dict[str, Any]] = []
    for n, action in enumerate(actions):
        where = f"actions[{n}]"
        kind = action.get("type")
        if kind not in ACTIONS:
            problems.add(f"{where}.type", "not an action automations know")
            continue
        clean = await _check_action(kind, action, where, refs, problems)
        if clean is not None:
            checked.append({"type": kind, **clean})
    return checked


async def _exists(lookup: Callable[[list[str]], Awaitable[set[str]]], value: Any) -> bool:
    return isinstance(value, str) and value in await lookup([value])


async def _check_action(
    kind: str, action: Mapping[str, Any], where: str, refs: References, problems: Problems
) -> dict[str, Any] | None:
    if kind == "set_priority":
        if action.get("priority") not in {p.value for p in TicketPriority}:
            problems.add(f"{where}.priority", "low, normal, high or urgent")
            return None
        return {"priority": action["priority"]}
    if kind == "set_status":
        if action.get("status") not in {s.value for s in TicketStatus}:
            problems.add(f"{where}.status", "not a ticket status")
            return None
        return {"status": action["status"]}
    if kind == "set_team":
        if not await _exists(refs.teams, action.get("teamId")):
            problems.add(f"{where}.teamId", "no such team")
            return None
        return {"teamId": action["teamId"]}
    if kind == "assign":
        user_id, strategy = action.get("userId"), action.get("strategy")
        if (user_id is None) == (strategy is None):
            problems.add(where, "either userId or strategy")
            return None
        if strategy is not None:
            if strategy not in STRATEGIES:
                problems.add(f"{where}.strategy", "round_robin or least_open")
                return None
            return {"strategy": strategy}
        if not await _exists(refs.staff, user_id):
            problems.add(f"{where}.userId", "not an agent or admin")
            return None
        return {"userId": user_id}
    if kind in ("add_tags", "remove_tags"):
        tags = action.get("tags")
        if (
            not isinstance(tags, list)
            or not 0 < len(tags) <= MAX_TAGS
            or not all(
                isinstance(t, str) and 0 < len(normal_tag(t)) <= MAX_TAG_LENGTH for t in tags
            )
        ):
            problems.add(
                f"{where}.tags", f"1 to {MAX_TAGS} tags of 1 to {MAX_TAG_LENGTH} characters"
            )
            return None
        return {"tags": list(dict.fromkeys(normal_tag(t) for t in tags))}
    if kind == "add_internal_note":
        body = action.get("body")
        if not isinstance(body, str) or not body.strip() or len(body) > MAX_NOTE:
            problems.add(f"{where}.body", f"a text of 1 to {MAX_NOTE} characters")
            return None
        return {"body": body.strip()}
    if kind == "reply":
        if not await _exists(refs.canned, action.get("cannedResponseId")):
            problems.add(f"{where}.cannedResponseId", "no such shared canned response")
            return None
        return {"cannedResponseId": action["cannedResponseId"]}
    if kind == "notify":
        user_ids = action.get("userIds")
        if not _is_text_list(user_ids):
            problems.add(f"{where}.userIds", "a list of agents")
            return None
        known = await refs.staff(list(user_ids))
        missing = [n for n, user_id in enumerate(user_ids) if user_id not in known]
        for index in missing:
            problems.add(f"{where}.userIds[{index}]", "not an agent or admin")
        return None if missing else {"userIds": list(dict.fromkeys(user_ids))}
    # webhook
    if not await _exists(refs.webhooks, action.get("webhookId")):
        problems.add(f"{where}.webhookId", "no such webhook")
        return None
    return {"webhookId": action["webhookId"]}


# -- matching ------------------------------------------------------------------------------------


def _field_value(field: str, facts: Mapping[str, Any]) -> Any:
    if field.startswith(ANSWER_PREFIX):
        return (facts.get("answers") or {}).get(field.removeprefix(ANSWER_PREFIX))
    return facts.get(field)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _filled(value: Any) -> bool:
    if isinstance(value, list | dict | str):
        return bool(value)
    return value is not None


def condition_holds(condition: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    field, op, expected = condition["field"], condition["op"], condition["value"]
    actual = _field_value(field, facts)
    if op == "filled":
        return _filled(actual) is expected
    if isinstance(actual, list):  # tags, or a multi-choice answer
        have = {normal_tag(_as_text(item)) for item in actual}
        if op == "eq":
            return normal_tag(expected) in have
        if op == "neq":
            return normal_tag(expected) not in have
        if op == "in":
            return bool(have & {normal_tag(v) for v in expected})
        if op == "notIn":
            return not have & {normal_tag(v) for v in expected}
        return any(expected.casefold() in item.casefold() for item in have)
    text = _as_text(actual)
    if op == "eq":
        return text == expected
    if op == "neq":
        return text != expected
    if op == "in":
        return text in expected
    if op == "notIn":
        return text not in expected
    return expected.casefold() in text.casefold()  # contains: literal, never a pattern


def matches(conditions: Sequence[Mapping[str, Any]], facts: Mapping[str, Any]) -> bool:
    """All conditions hold (no conditions: always)."""
    return all(condition_holds(condition, facts) for condition in conditions)
