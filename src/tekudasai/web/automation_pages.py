"""`/admin/automations`: list, create, edit, enable/disable and delete automations (admins).

The editor needs no JavaScript: conditions are rows of (field, operator, value) and actions rows
of (type + its parameters), each with a few empty rows to fill; a row left blank is ignored.
Everything is checked by the automations service (the API's rules), whose field errors
(`conditions[1].value`, `actions[0].teamId`) are shown next to the input they name.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.automations import rules
from tekudasai.automations import service as automations
from tekudasai.canned.models import CannedResponse
from tekudasai.core.errors import AppError
from tekudasai.db.session import DbSession
from tekudasai.forms.models import Form
from tekudasai.teams import service as teams
from tekudasai.web.deps import PageAdmin, PostedForm
from tekudasai.web.flash import flash
from tekudasai.web.rendering import render
from tekudasai.web.service_level_pages import PRIORITIES, _staff, discard_changes
from tekudasai.webhooks import service as webhooks

router = APIRouter()
AUTOMATIONS = "/admin/automations"

EVENTS = {
    "ticket.created": "A ticket is created",
    "ticket.updated": "A ticket is changed",
    "comment.created": "A comment is added",
    "sla.warning": "An SLA target is 80 % used",
    "sla.breached": "An SLA target is breached",
    "ticket.idle": "A ticket is idle for some hours",
}
FIELDS = {
    "status": "Status",
    "priority": "Priority",
    "teamId": "Team",
    "formId": "Form",
    "tags": "Tags",
    "summary": "Summary",
    "channel": "Channel (web, api, email)",
    "reporter.email": "Reporter's e-mail",
}
OPS = {
    "eq": "is",
    "neq": "is not",
    "in": "is one of",
    "notIn": "is none of",
    "contains": "contains",
    "filled": "is filled (true/false)",
}
ACTIONS = {
    "set_priority": "Set priority",
    "set_status": "Set status",
    "set_team": "Set team",
    "assign": "Assign",
    "add_tags": "Add tags",
    "remove_tags": "Remove tags",
    "add_internal_note": "Add an internal note",
    "reply": "Reply with a canned response",
    "notify": "Notify agents",
    "webhook": "Call a webhook",
}
STRATEGIES = {"round_robin": "Round robin in the ticket's team", "least_open": "Fewest open"}
STATUSES = {
    "open": "Open",
    "in_progress": "In progress",
    "pending": "Pending",
    "resolved": "Resolved",
    "closed": "Closed",
}
# The action's parameter in the API -> the form's input (suffixed with the row number).
PARAMS = {
    "priority": "act_priority",
    "status": "act_status",
    "teamId": "act_team",
    "userId": "act_user",
    "strategy": "act_strategy",
    "tags": "act_tags",
    "body": "act_body",
    "cannedResponseId": "act_canned",
    "userIds": "act_users",
    "webhookId": "act_webhook",
    "type": "act_type",
}
EMPTY_CONDITION_ROWS = 2
EMPTY_ACTION_ROWS = 2
MAX_ROWS = rules.MAX_ACTIONS + EMPTY_ACTION_ROWS


def _redirect(request: Request, path: str, message: str) -> Response:
    response = RedirectResponse(path, status_code=303)
    flash(request, response, message)
    return response


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


# -- form <-> API ----------------------------------------------------------------------------


def _blank_action() -> dict[str, Any]:
    return {key: "" for key in PARAMS.values()} | {"act_users": []}


def form_of(row: dict[str, Any]) -> dict[str, Any]:
    """An automation (API shape) as the editor shows it."""
    conditions = []
    for c in row["conditions"]:
        value = c["value"]
        if isinstance(value, list):
            value = ", ".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        conditions.append({"field": c["field"], "op": c["op"], "value": str(value)})
    actions = []
    for a in row["actions"]:
        action = _blank_action()
        action["act_type"] = a["type"]
        for key, value in a.items():
            if key in ("type",) or key not in PARAMS:
                continue
            if key == "tags":
                value = ", ".join(value)
            action[PARAMS[key]] = value
        actions.append(action)
    return {
        "name": row["name"],
        "event": row["event"],
        "idle_hours": "" if row["idleHours"] is None else str(row["idleHours"]),
        "position": str(row["position"]),
        "enabled": row["enabled"],
        "conditions": conditions,
        "actions": actions,
    }


EMPTY_FORM: dict[str, Any] = {
    "name": "",
    "event": "ticket.created",
    "idle_hours": "",
    "position": "0",
    "enabled": True,
    "conditions": [],
    "actions": [],
}


def _rows(posted: PostedForm, name: str) -> int:
    try:
        return max(0, min(int(str(posted.get(name, "0"))), MAX_ROWS))
    except ValueError:
        return 0


def values_of(posted: PostedForm) -> dict[str, Any]:
    """The posted editor as typed (to show again after an error)."""
    conditions = []
    for n in range(_rows(posted, "cond_rows")):
        conditions.append(
            {
                "field": str(posted.get(f"cond_field_{n}", "")).strip(),
                "op": str(posted.get(f"cond_op_{n}", "")),
                "value": str(posted.get(f"cond_value_{n}", "")),
            }
        )
    actions = []
    for n in range(_rows(posted, "act_rows")):
        action: dict[str, Any] = {key: str(posted.get(f"{key}_{n}", "")) for key in PARAMS.values()}
        action["act_users"] = [str(v) for v in posted.getlist(f"act_users_{n}")]
        actions.append(action)
    return {
        "name": str(posted.get("name", ""))[:200],
        "event": str(posted.get("event", "")),
        "idle_hours": str(posted.get("idle_hours", "")).strip(),
        "position": str(posted.get("position", "0")).strip(),
        "enabled": posted.get("enabled") == "on",
        "conditions": conditions,
        "actions": actions,
    }


def _condition_value(op: str, text: str) -> Any:
    if op in ("in", "notIn"):
        return _split(text)
    if op == "filled":
        return {"true": True, "false": False}.get(text.strip().lower(), text)
    return text


def _action(row: dict[str, Any]) -> dict[str, Any]:
    kind = row["act_type"]
    action: dict[str, Any] = {"type": kind}
    if kind == "set_priority":
        action["priority"] = row["act_priority"]
    elif kind == "set_status":
        action["status"] = row["act_status"]
    elif kind == "set_team":
        action["teamId"] = row["act_team"]
    elif kind == "assign":
        if row["act_strategy"]:
            action["strategy"] = row["act_strategy"]
        elif row["act_user"]:
            action["userId"] = row["act_user"]
    elif kind in ("add_tags", "remove_tags"):
        action["tags"] = _split(row["act_tags"])
    elif kind == "add_internal_note":
        action["body"] = row["act_body"]
    elif kind == "reply":
        action["cannedResponseId"] = row["act_canned"]
    elif kind == "notify":
        action["userIds"] = row["act_users"]
    elif kind == "webhook":
        action["webhookId"] = row["act_webhook"]
    return action


def api_of(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[int], list[int]]:
    """The editor's values in API shape; errors of inputs that are not numbers; and which form
    row each submitted condition and action came from (blank rows are left out)."""
    errors: dict[str, str] = {}
    condition_rows = [n for n, c in enumerate(values["conditions"]) if c["field"]]
    action_rows = [n for n, a in enumerate(values["actions"]) if a["act_type"]]

    def number(text: str, field: str) -> int | None:
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            errors[field] = "a whole number"
            return None

    position = number(values["position"], "position") or 0
    if not 0 <= position <= 100_000:
        errors["position"] = "between 0 and 100000"
    api = {
        "name": values["name"],
        "enabled": values["enabled"],
        "position": position,
        "event": values["event"],
        "idleHours": number(values["idle_hours"], "idle_hours"),
        "conditions": [
            {
                "field": values["conditions"][n]["field"],
                "op": values["conditions"][n]["op"],
                "value": _condition_value(
                    values["conditions"][n]["op"], values["conditions"][n]["value"]
                ),
            }
            for n in condition_rows
        ],
        "actions": [_action(values["actions"][n]) for n in action_rows],
    }
    if values["event"] not in EVENTS:
        errors["event"] = "choose an event"
    return api, errors, condition_rows, action_rows


def errors_of(error: AppError, condition_rows: list[int], action_rows: list[int]) -> dict[str, str]:
    """The service's field errors keyed by the editor's inputs."""
    found: dict[str, str] = {}
    for item in error.errors or []:
        field, message = str(item["field"]), str(item["message"])
        key = {"idleHours": "idle_hours"}.get(field, field)
        if field.startswith("conditions["):
            index, _, rest = field.removeprefix("conditions[").partition("]")
            row = condition_rows[int(index)] if int(index) < len(condition_rows) else 0
            key = f"cond_{rest.lstrip('.') or 'field'}_{row}"
        elif field.startswith("actions["):
            index, _, rest = field.removeprefix("actions[").partition("]")
            row = action_rows[int(index)] if int(index) < len(action_rows) else 0
            param = rest.lstrip(".").split("[", 1)[0]
            key = f"{PARAMS.get(param, 'act_type')}_{row}"
        found.setdefault(key, message)
    return found or {"name": error.message}


# -- pages -----------------------------------------------------------------------------------


async def _choices(db: AsyncSession, request: Request) -> dict[str, Any]:
    staff = await _staff(db, request.app.state.cipher)
    forms = [
        {"id": i, "name": n}
        for i, n in await db.execute(select(Form.id, Form.name).order_by(Form.name, Form.id))
    ]
    canned = [
        {"id": i, "name": t}
        for i, t in await db.execute(
            select(CannedResponse.id, CannedResponse.title)
            .where(CannedResponse.shared.is_(True))
            .order_by(CannedResponse.title)
        )
    ]
    answer_names = sorted(await automations.references(db).answer_names())
    team_list = await teams.list_teams(db)
    hooks = [{"id": hook.id, "name": hook.url} for hook in await webhooks.list_webhooks(db)]
    return {
        "events": EVENTS,
        "fields": FIELDS | {f"answer.{n}": f"Answer “{n}”" for n in answer_names},
        "ops": OPS,
        "action_types": ACTIONS,
        "priorities": PRIORITIES,
        "statuses": STATUSES,
        "strategies": STRATEGIES,
        "teams": team_list,
        "staff": staff,
        "forms": forms,
        "canned": canned,
        "webhooks": hooks,
        # (value, label) pairs for the editor's selects
        "team_options": [(t["id"], t["name"]) for t in team_list],
        "staff_options": [(p["id"], p["name"]) for p in staff],
        "canned_options": [(c["id"], c["name"]) for c in canned],
        "webhook_options": [(h["id"], h["name"]) for h in hooks],
    }


def describe(row: dict[str, Any], choices: dict[str, Any]) -> dict[str, list[str]]:
    """Conditions and actions in words for the list."""
    names: dict[str, str] = {t["id"]: t["name"] for t in choices["teams"]}
    names |= {p["id"]: p["name"] for p in choices["staff"]}
    names |= {f["id"]: f["name"] for f in choices["forms"]}
    names |= {c["id"]: c["name"] for c in choices["canned"]}
    names |= {w["id"]: w["name"] for w in choices["webhooks"]}

    def word(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(word(v) for v in value)
        return names.get(str(value), str(value))

    conditions = [
        f"{choices['fields'].get(c['field'], c['field'])} {OPS.get(c['op'], c['op'])} "
        f"{word(c['value'])}"
        for c in row["conditions"]
    ]
    actions = []
    for a in row["actions"]:
        params = [word(v) for k, v in a.items() if k != "type"]
        if a["type"] == "assign" and "strategy" in a:
            params = [STRATEGIES.get(a["strategy"], a["strategy"]).lower()]
        actions.append(f"{ACTIONS.get(a['type'], a['type'])}: {', '.join(params)}")
    return {"conditions": conditions, "actions": actions}


def _editor(form: dict[str, Any]) -> dict[str, Any]:
    """The form with its empty rows added."""
    return form | {
        "conditions": form["conditions"]
        + [{"field": "", "op": "eq", "value": ""} for _ in range(EMPTY_CONDITION_ROWS)],
        "actions": form["actions"] + [_blank_action() for _ in range(EMPTY_ACTION_ROWS)],
    }


async def _list_page(
    request: Request,
    db: AsyncSession,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    choices = await _choices(db, request)
    rows = [automations.public(row) for row in await automations.list_automations(db)]
    return render(
        request,
        "admin/automations.html",
        {
            "automations": [row | describe(row, choices) for row in rows],
            "form": _editor(form or EMPTY_FORM),
            "errors": errors or {},
            "choices": choices,
        }
        | choices,
        status=status,
    )


async def _edit_page(
    request: Request,
    db: AsyncSession,
    automation_id: str,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    choices = await _choices(db, request)
    return render(
        request,
        "admin/automation_edit.html",
        {
            "automation_id": automation_id,
            "form": _editor(form),
            "errors": errors or {},
            "choices": choices,
        },
        status=status,
    )


@router.get(AUTOMATIONS)
async def automations_page(request: Request, admin: PageAdmin, db: DbSession) -> Response:
    return await _list_page(request, db)


async def _save(
    request: Request, db: AsyncSession, posted: PostedForm, automation_id: str | None
) -> Response:
    values = values_of(posted)
    api, errors, condition_rows, action_rows = api_of(values)
    status = 400
    if not errors:
        try:
            if automation_id is None:
                await automations.create_automation(db, api)
            else:
                await automations.update_automation(db, automation_id, api)
        except AppError as error:
            discard_changes(db)
            errors, status = errors_of(error, condition_rows, action_rows), error.status_code
    if errors:
        # Show it again as typed, blank rows dropped (the empty ones are added back).
        values["conditions"] = [values["conditions"][n] for n in condition_rows]
        values["actions"] = [values["actions"][n] for n in action_rows]
        errors = _renumber(errors, condition_rows, action_rows)
        if automation_id is None:
            return await _list_page(request, db, form=values, errors=errors, status=status)
        return await _edit_page(request, db, automation_id, values, errors, status=status)
    verb = "created" if automation_id is None else "saved"
    return _redirect(request, AUTOMATIONS, f"Automation “{values['name'].strip()}” {verb}.")


def _renumber(
    errors: dict[str, str], condition_rows: list[int], action_rows: list[int]
) -> dict[str, str]:
    """Row numbers in error keys follow the rows as shown again (blank rows left out)."""
    renumbered: dict[str, str] = {}
    for key, message in errors.items():
        head, _, tail = key.rpartition("_")
        if head.startswith(("cond_", "act_")) and tail.isdigit():
            rows = condition_rows if head.startswith("cond_") else action_rows
            index = rows.index(int(tail)) if int(tail) in rows else 0
            key = f"{head}_{index}"
        renumbered.setdefault(key, message)
    return renumbered


@router.post(AUTOMATIONS)
async def create_automation(
    request: Request, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    return await _save(request, db, posted, None)


@router.get(AUTOMATIONS + "/{automation_id}")
async def edit_automation(
    request: Request, automation_id: str, admin: PageAdmin, db: DbSession
) -> Response:
    row = automations.public(await automations.get_automation(db, automation_id))
    return await _edit_page(request, db, automation_id, form_of(row))


@router.post(AUTOMATIONS + "/{automation_id}")
async def update_automation(
    request: Request, automation_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    await automations.get_automation(db, automation_id)
    return await _save(request, db, posted, automation_id)


@router.post(AUTOMATIONS + "/{automation_id}/enabled")
async def set_enabled(
    request: Request, automation_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    enabled = posted.get("enabled") == "on"
    try:
        row = await automations.update_automation(db, automation_id, {"enabled": enabled})
    except AppError as error:
        return _redirect(request, AUTOMATIONS, f"The automation was not changed: {error.message}")
    state = "enabled" if enabled else "disabled"
    return _redirect(request, AUTOMATIONS, f"Automation “{row.name}” {state}.")


@router.post(AUTOMATIONS + "/{automation_id}/delete")
async def delete_automation(
    request: Request, automation_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    await automations.delete_automation(db, automation_id)
    return _redirect(request, AUTOMATIONS, "Automation deleted.")
