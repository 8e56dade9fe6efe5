"""Business-hours calendars and SLA policies API (admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tekudasai.accounts.dependencies import Admin, scopes
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.schemas import ERROR_RESPONSES, Deleted, Envelope, ok
from tekudasai.db.session import DbSession
from tekudasai.sla import calendars, policies
from tekudasai.sla.schemas import (
    CalendarCreate,
    CalendarOut,
    CalendarPatch,
    PolicyCreate,
    PolicyOut,
    PolicyPatch,
)

router = APIRouter(
    prefix="/calendars", tags=["service levels"], responses=ERROR_RESPONSES, route_class=DirectRoute
)
ADMIN_SCOPE = scopes("admin")


@router.get("", openapi_extra=ADMIN_SCOPE, response_model=Envelope[list[CalendarOut]])
async def list_calendars(db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok([calendars.public(row) for row in await calendars.list_calendars(db)])


@router.post("", openapi_extra=ADMIN_SCOPE, response_model=Envelope[CalendarOut])
async def create_calendar(body: CalendarCreate, db: DbSession, admin: Admin) -> dict[str, Any]:
    row = await calendars.create_calendar(
        db,
        name=body.name,
        timezone=body.timezone,
        hours=body.hours,
        holidays=body.holidays,
        holiday_country=body.holiday_country,
    )
    return ok(calendars.public(row))


@router.get("/{calendar_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[CalendarOut])
async def get_calendar(calendar_id: str, db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok(calendars.public(await calendars.get_calendar(db, calendar_id)))


@router.patch("/{calendar_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[CalendarOut])
async def update_calendar(
    calendar_id: str, body: CalendarPatch, db: DbSession, admin: Admin
) -> dict[str, Any]:
    body.check_path_id(calendar_id)
    changes = body.model_dump(by_alias=True, exclude_unset=True)
    return ok(calendars.public(await calendars.update_calendar(db, calendar_id, changes)))


@router.delete("/{calendar_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[Deleted])
async def delete_calendar(calendar_id: str, db: DbSession, admin: Admin) -> dict[str, Any]:
    await calendars.delete_calendar(db, calendar_id)
    return ok({"id": calendar_id})


policies_router = APIRouter(
    prefix="/sla-policies",
    tags=["service levels"],
    responses=ERROR_RESPONSES,
    route_class=DirectRoute,
)


@policies_router.get("", openapi_extra=ADMIN_SCOPE, response_model=Envelope[list[PolicyOut]])
async def list_policies(db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok([policies.public(row) for row in await policies.list_policies(db)])


@policies_router.post("", openapi_extra=ADMIN_SCOPE, response_model=Envelope[PolicyOut])
async def create_policy(body: PolicyCreate, db: DbSession, admin: Admin) -> dict[str, Any]:
    values = body.model_dump(by_alias=True)
    return ok(policies.public(await policies.create_policy(db, values)))


@policies_router.get("/{policy_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[PolicyOut])
async def get_policy(policy_id: str, db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok(policies.public(await policies.get_policy(db, policy_id)))


@policies_router.patch(
    "/{policy_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[PolicyOut]
)
async def update_policy(
    policy_id: str, body: PolicyPatch, db: DbSession, admin: Admin
) -> dict[str, Any]:
    body.check_path_id(policy_id)
    changes = body.model_dump(by_alias=True, exclude_unset=True)
    return ok(policies.public(await policies.update_policy(db, policy_id, changes)))


@policies_router.delete("/{policy_id}", openapi_extra=ADMIN_SCOPE, response_model=Envelope[Deleted])
async def delete_policy(policy_id: str, db: DbSession, admin: Admin) -> dict[str, Any]:
    await policies.delete_policy(db, policy_id)
    return ok({"id": policy_id})
