"""Automations API (admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tekudasai.accounts.dependencies import Admin, scopes
from tekudasai.automations import service
from tekudasai.automations.schemas import AutomationCreate, AutomationOut, AutomationPatch
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.schemas import ERROR_RESPONSES, Deleted, Envelope, ok
from tekudasai.db.session import DbSession

router = APIRouter(
    prefix="/automations", tags=["automations"], responses=ERROR_RESPONSES, route_class=DirectRoute
)
ADMIN_SCOPE = scopes("admin")


@router.get("", openapi_extra=ADMIN_SCOPE, response_model=Envelope[list[AutomationOut]])
async def list_automations(db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok([service.public(row) for row in await service.list_automations(db)])


@router.post("", openapi_extra=ADMIN_SCOPE, response_model=Envelope[AutomationOut])
async def create_automation(body: AutomationCreate, db: DbSession, admin: Admin) -> dict[str, Any]:
    row = await service.create_automation(db, body.model_dump(by_alias=True))
    return ok(service.public(row))


@router.get("/{automation_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[AutomationOut])
async def get_automation(automation_id: str, db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok(service.public(await service.get_automation(db, automation_id)))


@router.patch("/{automation_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[AutomationOut])
async def update_automation(
    automation_id: str, body: AutomationPatch, db: DbSession, admin: Admin
) -> dict[str, Any]:
    body.check_path_id(automation_id)
    changes = body.model_dump(by_alias=True, exclude_unset=True)
    return ok(service.public(await service.update_automation(db, automation_id, changes)))


@router.delete("/{automation_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[Deleted])
async def delete_automation(automation_id: str, db: DbSession, admin: Admin) -> dict[str, Any]:
    await service.delete_automation(db, automation_id)
    return ok({"id": automation_id})
