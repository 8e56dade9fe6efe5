"""Admin pages: the form list, the form builder and the user list."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tekudasai.accounts import service as accounts_service
from tekudasai.accounts.models import Role
from tekudasai.core.errors import AppError
from tekudasai.core.state import Cipher
from tekudasai.db.session import DbSession
from tekudasai.forms import service as forms_service
from tekudasai.forms.engine import ELEMENT_TYPES
from tekudasai.web.agent_pages import _act
from tekudasai.web.deps import PageAdmin, PostedForm, safe_next
from tekudasai.web.flash import flash
from tekudasai.web.helpers import PAGE_SIZE, here, page_number, paging, query_builder
from tekudasai.web.rendering import render

router = APIRouter()

TYPE_LABELS = {
    "text-field": "Text field",
    "textarea": "Text area",
    "number": "Number",
    "date": "Date",
    "checkbox": "Checkbox",
    "dropdown": "Dropdown",
    "radio": "Radio buttons",
    "multi-select": "Multi-select",
    "file-upload": "File upload",
    "text-panel": "Text panel",
}
ELEMENT_ERROR = re.compile(r"^elements\[(\d+)\]\.?(.*)$")
MAX_NAME = 200
MAX_DESCRIPTION = 5000


@router.get("/agent/forms")
async def form_list(request: Request, admin: PageAdmin, db: DbSession) -> Response:
    page = page_number(request)
    forms, total = await forms_service.list_forms(
        db, enabled_only=False, page=page, limit=PAGE_SIZE
    )
    return render(
        request,
        "admin/forms.html",
        {"forms": forms, "p": paging(page, total), "query": query_builder(request)},
    )


@router.post("/agent/forms/{form_id}/toggle")
async def toggle_form(
    request: Request, form_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    form = await forms_service.get_form_view(db, form_id=form_id, enabled_only=False)
    disable = not form["disabled"]
    return await _act(
        request,
        "/agent/forms",
        forms_service.update_form(
            db, form_id=form_id, user_id=admin.user.id, changes={"disabled": disable}
        ),
        f"“{form['name']}” is now {'disabled' if disable else 'enabled'}.",
    )


@router.post("/agent/forms/{form_id}/delete")
async def delete_form(
    request: Request, form_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    return await _act(
        request,
        "/agent/forms",
        forms_service.delete_form(db, form_id=form_id),
        "The form was deleted.",
    )


def _builder(
    request: Request,
    form_id: str,
    values: dict[str, Any],
    *,
    errors: list[dict[str, Any]] | None = None,
    field_errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "admin/builder.html",
        {
            "form_id": form_id,
            "is_new": form_id == "new",
            "values": values,
            "errors": errors or [],
            "field_errors": field_errors or {},
            "element_types": [(t, TYPE_LABELS.get(t, t)) for t in ELEMENT_TYPES],
        },
        status=status,
    )


@router.get("/agent/forms/{form_id}")
async def builder(request: Request, form_id: str, admin: PageAdmin, db: DbSession) -> Response:
    if form_id == "new":
        values = {"name": "", "description": "", "disabled": False, "elements_json": "[]"}
    else:
        form = await forms_service.get_form_view(db, form_id=form_id, enabled_only=False)
        elements = [{k: v for k, v in e.items() if k != "contentHtml"} for e in form["elements"]]
        values = {
            "name": form["name"],
            "description": form["description"],
            "disabled": form["disabled"],
            "elements_json": json.dumps(elements, indent=2),
        }
    return _builder(request, form_id, values)


def _element_errors(errors: list[dict[str, Any]], elements: list[Any]) -> list[dict[str, Any]]:
    """Engine errors (`elements[3].name`) as a label for people plus the index for the editor."""
    shown = []
    for item in errors:
        field, message = str(item.get("field", "")), str(item.get("message", ""))
        match = ELEMENT_ERROR.match(field)
        if match:
            index, key = int(match.group(1)), match.group(2) or "element"
            el = elements[index] if index < len(elements) else {}
            title = (
                el.get("label") or el.get("name") or el.get("type") if isinstance(el, dict) else ""
            )
            shown.append(
                {
                    "index": index,
                    "key": key,
                    "message": message,
                    "label": f"Element {index + 1} ({title or 'untitled'}) · {key}",
                }
            )
        else:
            shown.append({"index": None, "key": field, "message": message, "label": field})
    return shown


@router.post("/agent/forms/{form_id}")
async def save_form(
    request: Request, form_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    name = str(posted.get("name", "")).strip()
    description = str(posted.get("description", "")).strip()
    disabled = posted.get("disabled") == "true"
    raw = str(posted.get("elements", "[]"))
    values = {
        "name": name,
        "description": description,
        "disabled": disabled,
        "elements_json": raw,
    }
    field_errors: dict[str, str] = {}
    if not name or len(name) > MAX_NAME:
        field_errors["name"] = f"A name of 1 to {MAX_NAME} characters is required."
    if len(description) > MAX_DESCRIPTION:
        field_errors["description"] = f"At most {MAX_DESCRIPTION} characters."
    try:
        elements = json.loads(raw)
    except ValueError:
        elements = None
    if field_errors or elements is None:
        errors = [{"index": None, "label": "Details", "message": m} for m in field_errors.values()]
        if elements is None:
            errors.append({"index": None, "label": "Elements", "message": "Not valid JSON."})
        return _builder(
            request, form_id, values, errors=errors, field_errors=field_errors, status=400
        )
    try:
        if form_id == "new":
            saved = await forms_service.create_form(
                db,
                creator_id=admin.user.id,
                name=name,
                description=description,
                disabled=disabled,
                elements=elements,
            )
        else:
            saved = await forms_service.update_form(
                db,
                form_id=form_id,
                user_id=admin.user.id,
                changes={
                    "name": name,
                    "description": description,
                    "disabled": disabled,
                    "elements": elements,
                },
            )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        errors = _element_errors(exc.errors or [{"field": "", "message": exc.message}], elements)
        return _builder(request, form_id, values, errors=errors, status=400)
    redirect = RedirectResponse(f"/agent/forms/{saved['id']}", status_code=303)
    flash(request, redirect, f"Form “{saved['name']}” saved.")
    return redirect


@router.get("/admin/users")
async def users(request: Request, admin: PageAdmin, db: DbSession, cipher: Cipher) -> Response:
    search = request.query_params.get("search", "").strip()[:254]
    role = request.query_params.get("role", "all")
    if role not in {r.value for r in Role}:
        role = "all"
    page = page_number(request)
    found, total = await accounts_service.list_users(
        db,
        cipher,
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
        search=search or None,
        role=role,
    )
    return render(
        request,
        "admin/users.html",
        {
            "users": [accounts_service.public_user(u, cipher) for u in found],
            "p": paging(page, total),
            "query": query_builder(request),
            "search": search,
            "role": role,
            "here": here(request),
        },
    )


def _back(posted: Any) -> str:
    back = safe_next(str(posted.get("next", "")), default="/admin/users")
    return back if back.startswith("/admin/users") else "/admin/users"


@router.post("/admin/users/{user_id}/role")
async def set_role(
    request: Request, user_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    role = str(posted.get("role", ""))
    return await _act(
        request,
        _back(posted),
        accounts_service.admin_set_role(db, user_id=user_id, role=role),
        "Role updated.",
    )


@router.post("/admin/users/{user_id}/ban")
async def ban(
    request: Request, user_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    reason = str(posted.get("reason", "")).strip()[:500] or None
    return await _act(
        request,
        _back(posted),
        accounts_service.ban_user(db, actor_id=admin.user.id, user_id=user_id, reason=reason),
        "The user is banned and signed out everywhere.",
    )


@router.post("/admin/users/{user_id}/unban")
async def unban(
    request: Request, user_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    return await _act(
        request, _back(posted), accounts_service.unban_user(db, user_id=user_id), "User unbanned."
    )
