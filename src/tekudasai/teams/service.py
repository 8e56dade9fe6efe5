"""Teams: agents grouped for assignment. Members must be agents or admins who are not banned."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.dependencies import STAFF_ROLES
from tekudasai.accounts.models import User
from tekudasai.core.errors import AppError, NotFound, ValidationFailed
from tekudasai.core.schemas import iso
from tekudasai.teams.models import Team, TeamMember


class TeamNotFound(NotFound):
    message = "Team not found."


class TeamNameTaken(AppError):
    status_code = 409
    code = "CONFLICT"
    message = "A team with this name exists."


async def members_of(db: AsyncSession, team_ids: list[str]) -> dict[str, list[str]]:
    rows = await db.execute(
        select(TeamMember.team_id, TeamMember.user_id)
        .where(TeamMember.team_id.in_(team_ids))
        .order_by(TeamMember.team_id, TeamMember.user_id)
    )
    found: dict[str, list[str]] = {team_id: [] for team_id in team_ids}
    for team_id, user_id in rows:
        found[team_id].append(user_id)
    return found


def public(team: Team, member_ids: list[str]) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        "memberIds": member_ids,
        "assignment": team.assignment,
        "createdAt": iso(team.created_at),
        "updatedAt": iso(team.updated_at),
    }


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationFailed(
            "The team needs a name.", errors=[{"field": "name", "message": "is empty"}]
        )
    return name


async def _check_members(db: AsyncSession, member_ids: list[str]) -> list[str]:
    """Distinct ids of agents or admins who are not banned; a field error for each other id."""
    wanted = list(dict.fromkeys(member_ids))
    staff = set(
        (
            await db.scalars(
                select(User.id).where(
                    User.id.in_(wanted), User.role.in_(STAFF_ROLES), User.banned.is_(False)
                )
            )
        ).all()
    )
    errors = [
        {"field": f"memberIds[{n}]", "message": "not an agent or admin"}
        for n, user_id in enumerate(member_ids)
        if user_id not in staff
    ]
    if errors:
        raise ValidationFailed("Team members must be agents or admins.", errors=errors)
    return wanted


async def _set_members(db: AsyncSession, team_id: str, member_ids: list[str]) -> None:
    await db.execute(
        delete(TeamMember).where(
            TeamMember.team_id == team_id, TeamMember.user_id.not_in(member_ids)
        )
    )
    if member_ids:
        await db.execute(
            pg_insert(TeamMember)
            .values([{"team_id": team_id, "user_id": user_id} for user_id in member_ids])
            .on_conflict_do_nothing()
        )


async def list_teams(db: AsyncSession) -> list[dict[str, Any]]:
    teams = list((await db.scalars(select(Team).order_by(func.lower(Team.name)))).all())
    members = await members_of(db, [team.id for team in teams])
    return [public(team, members[team.id]) for team in teams]


async def get_team(db: AsyncSession, team_id: str) -> Team:
    team = await db.get(Team, team_id)
    if team is None:
        raise TeamNotFound()
    return team


async def team_view(db: AsyncSession, team_id: str) -> dict[str, Any]:
    team = await get_team(db, team_id)
    return public(team, (await members_of(db, [team.id]))[team.id])


async def _name_free(db: AsyncSession, name: str, team_id: str | None = None) -> None:
    """Refuse a taken name before anything changes. _flush_name's savepoint alone does not
    catch it: begin_nested() flushes the pending change before its SAVEPOINT, so the clash
    aborted the whole transaction (pages showing the error again could not query)."""
    query = select(Team.id).where(Team.name == name)
    if team_id is not None:
        query = query.where(Team.id != team_id)
    if await db.scalar(query.limit(1)) is not None:
        raise TeamNameTaken()


async def _flush_name(db: AsyncSession) -> None:
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError as error:
        raise TeamNameTaken() from error


async def create_team(
    db: AsyncSession, *, name: str, member_ids: list[str], assignment: str
) -> dict[str, Any]:
    team = Team(name=_check_name(name), assignment=assignment)
    members = await _check_members(db, member_ids)
    await _name_free(db, team.name)
    db.add(team)
    await _flush_name(db)
    await _set_members(db, team.id, members)
    return public(team, sorted(members))


async def update_team(db: AsyncSession, team_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    team = await get_team(db, team_id)
    members = None
    if changes.get("memberIds") is not None:
        # Checked before the team changes: this query would autoflush a taken name outside
        # _flush_name's savepoint and abort the whole transaction (a 500, not the 409).
        members = await _check_members(db, changes["memberIds"])
    if changes.get("name") is not None:
        name = _check_name(changes["name"])
        await _name_free(db, name, team.id)
        team.name = name
    if changes.get("assignment") is not None:
        team.assignment = changes["assignment"]
    await _flush_name(db)
    if members is not None:
        await _set_members(db, team.id, members)
    return public(team, (await members_of(db, [team.id]))[team.id])


async def delete_team(db: AsyncSession, team_id: str) -> None:
    team = await get_team(db, team_id)
    await db.delete(team)
    await db.flush()
