"""Automations: stored checked (rules.py), listed in order, changed as a whole."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.dependencies import STAFF_ROLES
from tekudasai.accounts.models import User
from tekudasai.automations import engine, rules
from tekudasai.automations.models import Automation
from tekudasai.canned.models import CannedResponse
from tekudasai.core.errors import NotFound, ValidationFailed
from tekudasai.core.schemas import iso
from tekudasai.teams.models import Team


class AutomationNotFound(NotFound):
    message = "Automation not found."


def references(db: AsyncSession) -> rules.References:
    """Existence checks for what actions and conditions name, against the database."""

    async def existing(column: Any, ids: list[str], *where: Any) -> set[str]:
        return set((await db.scalars(select(column).where(column.in_(ids), *where))).all())

    async def teams(ids: list[str]) -> set[str]:
        return await existing(Team.id, ids)

    async def staff(ids: list[str]) -> set[str]:
        return await existing(User.id, ids, User.role.in_(STAFF_ROLES), User.banned.is_(False))

    async def canned(ids: list[str]) -> set[str]:
        return await existing(CannedResponse.id, ids, CannedResponse.shared.is_(True))

    async def webhooks(ids: list[str]) -> set[str]:
        # Webhooks are their own domain above this one: asked by table, not by model.
        if not await db.scalar(text("SELECT to_regclass('webhooks') IS NOT NULL")):
            return set()
        rows = await db.execute(text("SELECT id FROM webhooks WHERE id = ANY(:ids)"), {"ids": ids})
        return {row[0] for row in rows}

    async def answer_names() -> set[str]:
        rows = await db.execute(
            text(
                "SELECT DISTINCT element->>'name' FROM forms, "
                "jsonb_array_elements(forms.elements) AS element WHERE element ? 'name'"
            )
        )
        return {row[0] for row in rows}

    return rules.References(teams, staff, canned, webhooks, answer_names)


def public(row: Automation) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "enabled": row.enabled,
        "position": row.position,
        "event": row.event,
        "idleHours": row.idle_hours,
        "conditions": row.conditions,
        "actions": row.actions,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


async def _checked(db: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    """The whole rule (after a patch: as it would be), checked; all errors at once."""
    problems = rules.Problems()
    name = (values.get("name") or "").strip()
    if not name:
        problems.add("name", "is empty")
    idle = values.get("idleHours")
    if values["event"] == "ticket.idle":
        if not isinstance(idle, int) or not 0 < idle <= rules.MAX_IDLE_HOURS:
            problems.add("idleHours", f"1 to {rules.MAX_IDLE_HOURS} hours for ticket.idle")
    elif idle is not None:
        problems.add("idleHours", "only for ticket.idle")
    refs = references(db)
    conditions = await rules.check_conditions(values.get("conditions") or [], refs, problems)
    actions = await rules.check_actions(values.get("actions") or [], refs, problems)
    if problems.errors:
        raise ValidationFailed("The automation is not valid.", errors=problems.errors)
    return {
        "name": name,
        "enabled": values.get("enabled", True),
        "position": values.get("position", 0),
        "event": values["event"],
        "idle_hours": idle if values["event"] == "ticket.idle" else None,
        "conditions": conditions,
        "actions": actions,
    }


_BUMP = text("UPDATE automation_generation SET value = value + 1 WHERE id = 1")


async def _changed(db: AsyncSession) -> None:
    """Tell every process its cached rules are stale (automations/engine.py): the generation
    moves in this transaction, and this process drops its cache once the change commits."""
    await db.execute(_BUMP)
    engine.invalidate()  # at once too: a reload before the commit re-reads the generation
    event.listen(db.sync_session, "after_commit", lambda _session: engine.invalidate(), once=True)


async def list_automations(db: AsyncSession) -> list[Automation]:
    query = select(Automation).order_by(Automation.position, Automation.created_at, Automation.id)
    return list((await db.scalars(query)).all())


async def get_automation(db: AsyncSession, automation_id: str) -> Automation:
    row = await db.get(Automation, automation_id)
    if row is None:
        raise AutomationNotFound()
    return row


async def create_automation(db: AsyncSession, values: dict[str, Any]) -> Automation:
    row = Automation(**await _checked(db, values))
    db.add(row)
    await db.flush()
    await _changed(db)
    return row


async def update_automation(
    db: AsyncSession, automation_id: str, changes: dict[str, Any]
) -> Automation:
    row = await get_automation(db, automation_id)
    merged = public(row) | {
        key: value for key, value in changes.items() if value is not None or key == "idleHours"
    }
    if "event" in changes and changes["event"] != "ticket.idle" and "idleHours" not in changes:
        merged["idleHours"] = None  # moving off ticket.idle drops its hours
    for key, value in (await _checked(db, merged)).items():
        setattr(row, key, value)
    await db.flush()
    await _changed(db)
    return row


async def delete_automation(db: AsyncSession, automation_id: str) -> None:
    await db.delete(await get_automation(db, automation_id))
    await db.flush()
    await _changed(db)


async def count_enabled(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).where(Automation.enabled.is_(True))) or 0)
