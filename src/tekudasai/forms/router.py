"""Forms API: admins manage forms; every signed-in user reads the enabled ones."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from tekudasai.accounts.dependencies import Admin, CurrentUser, scopes
from tekudasai.accounts.limits import rate_limit
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.schemas import ERROR_RESPONSES, Envelope, PageEnvelope, ok, page
from tekudasai.db.session import DbSession
from tekudasai.forms import service
from tekudasai.forms.responses import CheckedResponse, FormOut
from tekudasai.forms.schemas import FormCreate, FormPatch, ResponseCheck

router = APIRouter(
    prefix="/forms", tags=["forms"], responses=ERROR_RESPONSES, route_class=DirectRoute
)

# Form lists are short and the original clients do not page them: a generous default limit.
# `forms` limit (default 30/minute per user): every request that writes or validates answers.
FORMS_LIMIT = [Depends(rate_limit("forms"))]
PageQuery = Annotated[int, Query(alias="page", ge=1, le=1_000_000)]
LimitQuery = Annotated[int, Query(ge=1, le=100)]


@router.get("/enabled", openapi_extra=scopes("forms:read"), response_model=PageEnvelope[FormOut])
async def list_enabled_forms(
    db: DbSession, user: CurrentUser, page_: PageQuery = 1, limit: LimitQuery = 100
) -> dict[str, Any]:
    items, total = await service.list_forms(db, enabled_only=True, page=page_, limit=limit)
    return page(items, page=page_, limit=limit, total=total)


@router.get(
    "/enabled/{form_id}", openapi_extra=scopes("forms:read"), response_model=Envelope[FormOut]
)
async def get_enabled_form(form_id: str, db: DbSession, user: CurrentUser) -> dict[str, Any]:
    return ok(await service.get_form_view(db, form_id=form_id, enabled_only=True))


@router.post(
    "/enabled/{form_id}/validate",
    openapi_extra=scopes("forms:read"),
    dependencies=FORMS_LIMIT,
    response_model=Envelope[CheckedResponse],
)
async def validate_response(
    form_id: str, body: ResponseCheck, db: DbSession, user: CurrentUser
) -> dict[str, Any]:
    """Check answers as ticket creation would (live feedback for clients); stores nothing."""
    form = await service.get_enabled_form(db, form_id=form_id)
    version = await service.current_version(db, form=form)
    values, _ = await service.validate_for_ticket(
        db, plan=service.plan_of(version), response=body.form_response, reporter_id=user.user.id
    )
    return ok({"formResponse": values})


@router.get("", openapi_extra=scopes("forms:read"), response_model=PageEnvelope[FormOut])
async def list_forms(
    db: DbSession, admin: Admin, page_: PageQuery = 1, limit: LimitQuery = 100
) -> dict[str, Any]:
    items, total = await service.list_forms(db, enabled_only=False, page=page_, limit=limit)
    return page(items, page=page_, limit=limit, total=total)


@router.post(
    "",
    openapi_extra=scopes("forms:write"),
    dependencies=FORMS_LIMIT,
    response_model=Envelope[FormOut],
)
async def create_form(body: FormCreate, db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok(
        await service.create_form(
            db,
            creator_id=admin.user.id,
            name=body.name,
            description=body.description,
            disabled=body.disabled,
            elements=body.elements,
        )
    )


@router.get("/{form_id}", openapi_extra=scopes("forms:read"), response_model=Envelope[FormOut])
async def get_form(form_id: str, db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok(await service.get_form_view(db, form_id=form_id, enabled_only=False))


@router.patch(
    "/{form_id}",
    openapi_extra=scopes("forms:write"),
    dependencies=FORMS_LIMIT,
    response_model=Envelope[FormOut],
)
async def update_form(form_id: str, body: FormPatch, db: DbSession, admin: Admin) -> dict[str, Any]:
    body.check_path_id(form_id)
    changes = body.model_dump(include=body.model_fields_set)
    return ok(
        await service.update_form(db, form_id=form_id, user_id=admin.user.id, changes=changes)
    )


@router.delete(
    "/{form_id}",
    openapi_extra=scopes("forms:write"),
    dependencies=FORMS_LIMIT,
    response_model=Envelope[FormOut],
)
async def delete_form(form_id: str, db: DbSession, admin: Admin) -> dict[str, Any]:
    return ok(await service.delete_form(db, form_id=form_id))
