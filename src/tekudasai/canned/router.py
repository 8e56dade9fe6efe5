"""Canned responses API (agents and admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tekudasai.accounts.dependencies import Agent, Principal, scopes
from tekudasai.accounts.models import Role
from tekudasai.canned import service
from tekudasai.canned.schemas import CannedCreate, CannedOut, CannedPatch
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.schemas import ERROR_RESPONSES, Deleted, Envelope, ok
from tekudasai.db.session import DbSession

router = APIRouter(
    prefix="/canned-responses",
    tags=["canned responses"],
    responses=ERROR_RESPONSES,
    route_class=DirectRoute,
)


def _is_admin(agent: Principal) -> bool:
    return bool(agent.user.role == Role.ADMIN.value)


@router.get("", openapi_extra=scopes("tickets:read"), response_model=Envelope[list[CannedOut]])
async def list_canned(db: DbSession, agent: Agent) -> dict[str, Any]:
    rows = await service.list_for(db, user_id=agent.user.id)
    return ok([service.public(row) for row in rows])


@router.post("", openapi_extra=scopes("tickets:write"), response_model=Envelope[CannedOut])
async def create_canned(body: CannedCreate, db: DbSession, agent: Agent) -> dict[str, Any]:
    row = await service.create(
        db,
        owner_id=agent.user.id,
        is_admin=_is_admin(agent),
        title=body.title,
        body=body.body,
        shared=body.shared,
    )
    return ok(service.public(row))


@router.get(
    "/{canned_id}", openapi_extra=scopes("tickets:read"), response_model=Envelope[CannedOut]
)
async def get_canned(canned_id: str, db: DbSession, agent: Agent) -> dict[str, Any]:
    return ok(service.public(await service.get_visible(db, canned_id, user_id=agent.user.id)))


@router.patch(
    "/{canned_id}", openapi_extra=scopes("tickets:write"), response_model=Envelope[CannedOut]
)
async def update_canned(
    canned_id: str, body: CannedPatch, db: DbSession, agent: Agent
) -> dict[str, Any]:
    body.check_path_id(canned_id)
    changes = body.model_dump(by_alias=True, exclude_unset=True)
    row = await service.update(
        db, canned_id, changes, user_id=agent.user.id, is_admin=_is_admin(agent)
    )
    return ok(service.public(row))


@router.delete(
    "/{canned_id}", openapi_extra=scopes("tickets:write"), response_model=Envelope[Deleted]
)
async def delete_canned(canned_id: str, db: DbSession, agent: Agent) -> dict[str, Any]:
    await service.delete(db, canned_id, user_id=agent.user.id, is_admin=_is_admin(agent))
    return ok({"id": canned_id})
