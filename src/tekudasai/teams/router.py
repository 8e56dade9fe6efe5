"""Teams API (admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tekudasai.accounts.dependencies import Admin, scopes
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.schemas import ERROR_RESPONSES, Deleted, Envelope, ok
from tekudasai.db.session import DbSession
from tekudasai.teams import service
from tekudasai.teams.schemas import TeamCreate, TeamOut, TeamPatch

router = APIRouter(
    prefix="/teams", tags=["teams"], responses=ERROR_RESPONSES, route_class=DirectRoute
)
ADMIN_SCOPE = scopes("admin")


@router.get("", openapi_extra=ADMIN_SCOPE, response_model=Envelope[list[TeamOut]])
async def list_teams(db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok(await service.list_teams(db))


@router.post("", openapi_extra=ADMIN_SCOPE, response_model=Envelope[TeamOut])
async def create_team(body: TeamCreate, db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok(
        await service.create_team(
            db, name=body.name, member_ids=body.member_ids, assignment=body.assignment
        )
    )


@router.get("/{team_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[TeamOut])
async def get_team(team_id: str, db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok(await service.team_view(db, team_id))


@router.patch("/{team_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[TeamOut])
async def update_team(team_id: str, body: TeamPatch, db: DbSession, admin: Admin) -> dict[str, Any]:
    body.check_path_id(team_id)
    changes = body.model_dump(by_alias=True, exclude_unset=True)
    return ok(await service.update_team(db, team_id, changes))


@router.delete("/{team_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[Deleted])
async def delete_team(team_id: str, db: DbSession, admin: Admin) -> dict[str, Any]:
    await service.delete_team(db, team_id)
    return ok({"id": team_id})
