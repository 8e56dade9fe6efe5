"""SLA policies: which tickets get which targets, on which calendar."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.errors import NotFound, ValidationFailed
from tekudasai.core.schemas import iso
from tekudasai.forms.models import Form
from tekudasai.sla.models import BusinessCalendar, SlaPolicy
from tekudasai.teams.models import Team
from tekudasai.tickets.models import TicketPriority

MAX_MINUTES = 366 * 24 * 60  # a target longer than a year is a typo
CONDITION_KEYS = ("priority", "formId", "teamId")


class PolicyNotFound(NotFound):
    message = "SLA policy not found."


def public(policy: SlaPolicy) -> dict[str, Any]:
    return {
        "id": policy.id,
        "name": policy.name,
        "position": policy.position,
        "conditions": policy.conditions,
        "calendarId": policy.calendar_id,
        "firstResponseMinutes": policy.first_response_minutes,
        "resolutionMinutes": policy.resolution_minutes,
        "createdAt": iso(policy.created_at),
        "updatedAt": iso(policy.updated_at),
    }


async def _existing(db: AsyncSession, column: Any, ids: list[str]) -> set[str]:
    return set((await db.scalars(select(column).where(column.in_(ids)))).all())


async def _check(db: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    """Every field present in `values` (API names) checked; all errors at once."""
    errors: list[dict[str, str]] = []
    if "name" in values:
        values["name"] = values["name"].strip()
        if not values["name"]:
            errors.append({"field": "name", "message": "is empty"})
    for key in ("firstResponseMinutes", "resolutionMinutes"):
        if key in values and not 0 < values[key] <= MAX_MINUTES:
            errors.append({"field": key, "message": f"between 1 and {MAX_MINUTES} minutes"})
    if "calendarId" in values and not await _existing(
        db, BusinessCalendar.id, [values["calendarId"]]
    ):
        errors.append({"field": "calendarId", "message": "no such calendar"})
    conditions = values.get("conditions") or {}
    known = {
        "priority": {p.value for p in TicketPriority},
        "formId": await _existing(db, Form.id, conditions.get("formId") or []),
        "teamId": await _existing(db, Team.id, conditions.get("teamId") or []),
    }
    for key, wanted in conditions.items():
        if key not in CONDITION_KEYS:
            errors.append({"field": f"conditions.{key}", "message": "not a condition"})
            continue
        for n, value in enumerate(wanted):
            if value not in known[key]:
                errors.append({"field": f"conditions.{key}[{n}]", "message": "unknown value"})
    if errors:
        raise ValidationFailed("The SLA policy is not valid.", errors=errors)
    if "conditions" in values:
        values["conditions"] = {k: list(dict.fromkeys(v)) for k, v in conditions.items() if v}
    return values


async def list_policies(db: AsyncSession) -> list[SlaPolicy]:
    query = select(SlaPolicy).order_by(SlaPolicy.position, SlaPolicy.created_at, SlaPolicy.id)
    return list((await db.scalars(query)).all())


async def get_policy(db: AsyncSession, policy_id: str) -> SlaPolicy:
    policy = await db.get(SlaPolicy, policy_id)
    if policy is None:
        raise PolicyNotFound()
    return policy


_COLUMNS = {
    "name": "name",
    "position": "position",
    "conditions": "conditions",
    "calendarId": "calendar_id",
    "firstResponseMinutes": "first_response_minutes",
    "resolutionMinutes": "resolution_minutes",
}


async def create_policy(db: AsyncSession, values: dict[str, Any]) -> SlaPolicy:
    checked = await _check(db, dict(values))
    policy = SlaPolicy(**{_COLUMNS[key]: value for key, value in checked.items()})
    db.add(policy)
    await db.flush()
    return policy


async def update_policy(db: AsyncSession, policy_id: str, changes: dict[str, Any]) -> SlaPolicy:
    policy = await get_policy(db, policy_id)
    # A null leaves the field as it is: every policy field is required.
    given = {k: v for k, v in changes.items() if k in _COLUMNS and v is not None}
    checked = await _check(db, given)
    for key, value in checked.items():
        setattr(policy, _COLUMNS[key], value)
    await db.flush()
    return policy


async def delete_policy(db: AsyncSession, policy_id: str) -> None:
    await db.delete(await get_policy(db, policy_id))
    await db.flush()
