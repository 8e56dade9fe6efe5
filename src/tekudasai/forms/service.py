"""Forms: CRUD with versions, and what tickets need (enabled form, version, response check)."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.schemas import iso
from tekudasai.forms import engine
from tekudasai.forms.errors import FormHasTickets, FormNotDisabled, FormNotFound, InvalidFormData
from tekudasai.forms.markdown import render_markdown
from tekudasai.forms.models import Form, FormVersion
from tekudasai.tickets.models import Ticket
from tekudasai.uploads import service as uploads_service

_PARSED_MAX = 512
# Versions are immutable, so their plans can be reused. The key includes the row's creation time:
# fixed ids (demo forms) may name different definitions in different databases.
_plans: OrderedDict[tuple[str, int, datetime], engine.FormPlan] = OrderedDict()


def _cached_plan(key: tuple[str, int, datetime]) -> engine.FormPlan | None:
    plan = _plans.get(key)
    if plan is not None:
        _plans.move_to_end(key)
    return plan


def plan_of(version: FormVersion) -> engine.FormPlan:
    """The engine's plan for a stored version (cached: versions never change)."""
    key = (version.form_id, version.version, version.created_at)
    plan = _cached_plan(key)
    if plan is None:
        plan = _plans[key] = engine.FormPlan(engine.parse_elements(version.elements))
        if len(_plans) > _PARSED_MAX:
            _plans.popitem(last=False)
    return plan


def _has_tickets() -> Any:
    return exists().where(Ticket.form_id == Form.id).correlate(Form).label("has_tickets")


async def get_enabled_form(db: AsyncSession, *, form_id: str) -> Form:
    """A form a customer may file a ticket with; 404 when missing or disabled."""
    form = await db.get(Form, form_id)
    if form is None or form.disabled:
        raise FormNotFound()
    return form


async def get_form_version(db: AsyncSession, *, form_id: str, version: int) -> FormVersion:
    found = await db.get(FormVersion, (form_id, version))
    if found is None:
        raise FormNotFound()
    return found


async def current_version(db: AsyncSession, *, form: Form) -> FormVersion:
    return await get_form_version(db, form_id=form.id, version=form.version)


async def plan_for(
    db: AsyncSession, *, form_id: str, version: int, created_at: datetime
) -> engine.FormPlan:
    """The plan of a stored version; its definition is read only when the plan is not cached."""
    cached = _cached_plan((form_id, version, created_at))
    if cached is not None:
        return cached
    return plan_of(await get_form_version(db, form_id=form_id, version=version))


async def validate_for_ticket(
    db: AsyncSession,
    *,
    plan: engine.FormPlan,
    response: Any,
    reporter_id: str,
    editor_id: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Check a response against a version; (answers to store, upload ids it references).

    A file answer must be an upload of the person saving it: the reporter, or the agent
    editing the ticket (`editor_id`; the reporter's files stay valid in an agent's edit). It is
    stored as the upload object."""
    result = engine.validate_response(plan, response)
    errors = list(result.errors)
    files: dict[str, str] = {
        e.name: result.values[e.name]
        for e in plan.elements
        if isinstance(e, engine.FileUpload) and result.values.get(e.name, "") != ""
    }
    uploaders = [reporter_id] if editor_id is None else [reporter_id, editor_id]
    owned = await uploads_service.uploads_of(db, ids=files.values(), uploader_ids=uploaders)
    values = dict(result.values)
    for name, upload_id in files.items():
        upload = owned.get(upload_id)
        if upload is None:
            errors.append({"field": name, "message": "Unknown upload"})
            values[name] = ""
        else:
            values[name] = uploads_service.upload_view(upload)
    if errors:
        first = errors[0]
        raise InvalidFormData(f"{first['field']}: {first['message']}", errors=errors)
    return values, list(dict.fromkeys(u for u in files.values() if u in owned))


def _element_view(element: dict[str, Any]) -> dict[str, Any]:
    if element.get("type") == "text-panel":
        return {**element, "contentHtml": render_markdown(str(element.get("content", "")))}
    return element


def form_view(
    form: Form, version: FormVersion | None = None, *, has_tickets: bool | None = None
) -> dict[str, Any]:
    """The contract's form object; with `version`, that version's definition (tickets use it)."""
    source: Form | FormVersion = version if version is not None else form
    view: dict[str, Any] = {
        "id": form.id,
        "name": source.name,
        "description": source.description,
        "disabled": form.disabled,
        "elements": [_element_view(e) for e in source.elements],
        "version": version.version if version is not None else form.version,
        "creatorId": form.creator_id,
        "createdAt": iso(form.created_at),
        "updatedAt": iso(form.updated_at),
    }
    if has_tickets is not None:
        view["hasTickets"] = has_tickets
    return view


async def list_forms(
    db: AsyncSession, *, enabled_only: bool, page: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of forms, newest first, with hasTickets and the total in the same query."""
    query = select(Form, _has_tickets(), func.count().over().label("total"))
    if enabled_only:
        query = query.where(Form.disabled.is_(False))
    query = query.order_by(Form.created_at.desc(), Form.id).limit(limit).offset((page - 1) * limit)
    rows = (await db.execute(query)).all()
    if not rows and page > 1:
        total = await db.scalar(
            select(func.count()).select_from(Form).where(Form.disabled.is_(False))
            if enabled_only
            else select(func.count()).select_from(Form)
        )
    else:
        total = rows[0].total if rows else 0
    return [form_view(row[0], has_tickets=row[1]) for row in rows], int(total or 0)


async def get_form_view(db: AsyncSession, *, form_id: str, enabled_only: bool) -> dict[str, Any]:
    query = select(Form, _has_tickets()).where(Form.id == form_id)
    if enabled_only:
        query = query.where(Form.disabled.is_(False))
    row = (await db.execute(query)).first()
    if row is None:
        raise FormNotFound()
    return form_view(row[0], has_tickets=row[1])


def _snapshot(form: Form, *, user_id: str | None) -> FormVersion:
    return FormVersion(
        form_id=form.id,
        version=form.version,
        name=form.name,
        description=form.description,
        elements=form.elements,
        created_by=user_id,
        # Set here rather than by the server default, so it is readable without a refresh.
        created_at=datetime.now(UTC),
    )


async def create_form(
    db: AsyncSession,
    *,
    creator_id: str,
    name: str,
    description: str,
    disabled: bool,
    elements: list[Any],
) -> dict[str, Any]:
    """A new form at version 1 (and its first version row)."""
    parsed = engine.parse_elements(elements)
    form = Form(
        creator_id=creator_id,
        name=name,
        description=description,
        disabled=disabled,
        elements=engine.dump_elements(parsed),
        version=1,
    )
    db.add(form)
    await db.flush()
    db.add(_snapshot(form, user_id=creator_id))
    await db.flush()
    await db.refresh(form)
    return form_view(form, has_tickets=False)


async def update_form(
    db: AsyncSession, *, form_id: str, user_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Apply a partial edit; a changed name, description or elements make a new version."""
    form = await db.get(Form, form_id, with_for_update=True)
    if form is None:
        raise FormNotFound()
    if "elements" in changes:
        changes["elements"] = engine.dump_elements(engine.parse_elements(changes["elements"]))
    definition_changed = any(
        key in changes and changes[key] != getattr(form, key)
        for key in ("name", "description", "elements")
    )
    for key in ("name", "description", "elements", "disabled"):
        if key in changes:
            setattr(form, key, changes[key])
    if definition_changed:
        form.version += 1
        db.add(_snapshot(form, user_id=user_id))
    await db.flush()
    await db.refresh(form)
    has_tickets = await db.scalar(select(exists().where(Ticket.form_id == form.id)))
    return form_view(form, has_tickets=bool(has_tickets))


async def delete_form(db: AsyncSession, *, form_id: str) -> dict[str, Any]:
    """Delete a disabled form no ticket uses; answers the deleted form."""
    form = await db.get(Form, form_id, with_for_update=True)
    if form is None:
        raise FormNotFound()
    if not form.disabled:
        raise FormNotDisabled()
    if await db.scalar(select(exists().where(Ticket.form_id == form.id))):
        raise FormHasTickets()
    view = form_view(form, has_tickets=False)
    try:
        async with db.begin_nested():
            await db.delete(form)
            await db.flush()
    except IntegrityError:
        # A ticket was filed with it between the check and the delete.
        raise FormHasTickets() from None
    return view
