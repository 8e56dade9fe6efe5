"""Service-level pages: teams, business-hours calendars and SLA policies (admins), canned
replies (agents).

Pages call the same services as the API, so a page shows exactly the API's validation
messages; a refused form is shown again with what was typed and the errors next to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.dependencies import STAFF_ROLES
from tekudasai.accounts.models import User
from tekudasai.canned import service as canned
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.errors import AppError
from tekudasai.db.session import DbSession
from tekudasai.forms.models import Form
from tekudasai.sla import calendars, policies
from tekudasai.teams import service as teams
from tekudasai.web.deps import PageAdmin, PageAgent, PostedForm
from tekudasai.web.flash import flash
from tekudasai.web.rendering import render

router = APIRouter()
LEVELS = "/admin/service-levels"
CANNED = "/agent/canned"
ASSIGNMENTS = {
    "manual": "Manual",
    "round_robin": "Round robin",
    "least_open": "Fewest open tickets",
}
DAY_LABELS = dict(
    zip(calendars.WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                             "Saturday", "Sunday"), strict=True)
)  # fmt: skip


def _redirect(request: Request, path: str, message: str) -> Response:
    response = RedirectResponse(path, status_code=303)
    flash(request, response, message)
    return response


def discard_changes(db: AsyncSession) -> None:
    """After a refused change, before the form is shown again: forget what the service left
    in the session (a new team whose name was taken, a rename), or the page's own queries
    would flush it again and the request's commit would fail."""
    db.expunge_all()


def _errors_by_field(error: AppError) -> dict[str, str]:
    return {e["field"]: e["message"] for e in error.errors or []}


async def _staff(db: AsyncSession, cipher: PiiCipher) -> list[dict[str, str]]:
    rows = await db.scalars(select(User).where(User.role.in_(STAFF_ROLES), User.banned.is_(False)))
    people = [
        {"id": u.id, "name": cipher.decrypt(u.name_ciphertext, context="user.name")} for u in rows
    ]
    return sorted(people, key=lambda p: p["name"].casefold())


# -- teams and calendars -------------------------------------------------------------------------


def hours_text(hours: dict[str, list[list[str]]]) -> dict[str, str]:
    """Each day's ranges as the form shows them: `09:00-12:00, 13:00-17:00`."""
    return {day: ", ".join(f"{a}-{b}" for a, b in hours.get(day, [])) for day in calendars.WEEKDAYS}


def parse_hours(posted: PostedForm) -> dict[str, list[list[str]]]:
    """The form's per-day text back into ranges; a piece without a dash stays a one-item
    range so the service names it as malformed."""
    hours: dict[str, list[list[str]]] = {}
    for day in calendars.WEEKDAYS:
        text = str(posted.get(f"hours_{day}", "")).strip()
        pieces = [piece.strip() for piece in text.split(",") if piece.strip()]
        hours[day] = [[part.strip() for part in piece.split("-", 1)] for piece in pieces]
    return hours


def _calendar_values(posted: PostedForm) -> dict[str, Any]:
    holidays = str(posted.get("holidays", ""))
    return {
        "name": str(posted.get("calendar_name", "")),
        "timezone": str(posted.get("timezone", "")).strip(),
        "hours": parse_hours(posted),
        "holidays": [
            line.strip() for line in holidays.replace(",", "\n").splitlines() if line.strip()
        ],
        "holidayCountry": str(posted.get("holiday_country", "")).strip() or None,
    }


def _calendar_form(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": values["name"],
        "timezone": values["timezone"],
        "hours": hours_text(values["hours"]),
        "holidays": "\n".join(values["holidays"]),
        "holiday_country": values["holidayCountry"] or "",
    }


EMPTY_CALENDAR: dict[str, Any] = {
    "name": "",
    "timezone": "UTC",
    "hours": {day: [["09:00", "17:00"]] for day in calendars.WEEKDAYS[:5]},
    "holidays": [],
    "holidayCountry": None,
}


async def _levels_page(
    request: Request,
    db: AsyncSession,
    *,
    team_form: dict[str, Any] | None = None,
    team_errors: dict[str, str] | None = None,
    calendar_form: dict[str, Any] | None = None,
    calendar_errors: dict[str, str] | None = None,
    policy_form: dict[str, Any] | None = None,
    policy_errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    cipher: PiiCipher = request.app.state.cipher
    staff = await _staff(db, cipher)
    return render(
        request,
        "admin/service_levels.html",
        {
            "teams": await teams.list_teams(db),
            "staff": staff,
            "names": {p["id"]: p["name"] for p in staff},
            "calendars": [calendars.public(row) for row in await calendars.list_calendars(db)],
            "assignments": ASSIGNMENTS,
            "days": DAY_LABELS,
            "team_form": team_form or {"name": "", "member_ids": [], "assignment": "manual"},
            "team_errors": team_errors or {},
            "calendar_form": calendar_form or _calendar_form(EMPTY_CALENDAR),
            "calendar_errors": calendar_errors or {},
            "hours_text": hours_text,
            "policies": [policies.public(row) for row in await policies.list_policies(db)],
            "policy_form": policy_form or dict(EMPTY_POLICY),
            "policy_errors": policy_errors or {},
        }
        | await _policy_choices(db),
        status=status,
    )


@router.get(LEVELS)
async def service_levels(request: Request, admin: PageAdmin, db: DbSession) -> Response:
    return await _levels_page(request, db)


def _team_values(posted: PostedForm) -> dict[str, Any]:
    return {
        "name": str(posted.get("team_name", "")),
        "member_ids": [str(m) for m in posted.getlist("member_ids")],
        "assignment": str(posted.get("assignment", "manual")),
    }


@router.post(LEVELS + "/teams")
async def create_team(
    request: Request, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    values = _team_values(posted)
    if values["assignment"] not in ASSIGNMENTS:
        values["assignment"] = "manual"
    try:
        await teams.create_team(
            db,
            name=values["name"],
            member_ids=values["member_ids"],
            assignment=values["assignment"],
        )
    except AppError as error:
        discard_changes(db)
        return await _levels_page(
            request,
            db,
            team_form=values,
            team_errors=_errors_by_field(error) or {"name": error.message},
            status=error.status_code,
        )
    return _redirect(request, LEVELS, f"Team “{values['name'].strip()}” created.")


async def _team_edit_page(
    request: Request,
    db: AsyncSession,
    team_id: str,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "admin/team_edit.html",
        {
            "team_id": team_id,
            "team_form": form,
            "team_errors": errors or {},
            "staff": await _staff(db, request.app.state.cipher),
            "assignments": ASSIGNMENTS,
        },
        status=status,
    )


@router.get(LEVELS + "/teams/{team_id}")
async def edit_team(request: Request, team_id: str, admin: PageAdmin, db: DbSession) -> Response:
    team = await teams.team_view(db, team_id)
    form = {"name": team["name"], "member_ids": team["memberIds"], "assignment": team["assignment"]}
    return await _team_edit_page(request, db, team_id, form)


@router.post(LEVELS + "/teams/{team_id}")
async def update_team(
    request: Request, team_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    values = _team_values(posted)
    await teams.get_team(db, team_id)  # 404 before any field error
    changes = {
        "name": values["name"],
        "memberIds": values["member_ids"],
        "assignment": values["assignment"] if values["assignment"] in ASSIGNMENTS else None,
    }
    try:
        await teams.update_team(db, team_id, changes)
    except AppError as error:
        discard_changes(db)
        # Shown on the team's edit page with the fields as typed and the errors next to them.
        errors = {
            {"memberIds": "member_ids"}.get(field.split("[", 1)[0], field): message
            for field, message in _errors_by_field(error).items()
        } or {"name": error.message}
        return await _team_edit_page(request, db, team_id, values, errors, status=error.status_code)
    return _redirect(request, LEVELS, f"Team “{values['name'].strip()}” saved.")


@router.post(LEVELS + "/teams/{team_id}/delete")
async def delete_team(
    request: Request, team_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    await teams.delete_team(db, team_id)
    return _redirect(request, LEVELS, "Team deleted.")


@router.post(LEVELS + "/calendars")
async def create_calendar(
    request: Request, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    values = _calendar_values(posted)
    try:
        await calendars.create_calendar(
            db,
            name=values["name"],
            timezone=values["timezone"],
            hours=values["hours"],
            holidays=values["holidays"],
            holiday_country=values["holidayCountry"],
        )
    except AppError as error:
        return await _levels_page(
            request,
            db,
            calendar_form=_calendar_form(values),
            calendar_errors=_calendar_errors(error),
            status=error.status_code,
        )
    return _redirect(request, LEVELS, f"Calendar “{values['name'].strip()}” created.")


def _calendar_errors(error: AppError) -> dict[str, str]:
    """Field errors keyed by the form's inputs (`hours.mon[1]` belongs to Monday's input)."""
    found: dict[str, str] = {}
    for field, message in _errors_by_field(error).items():
        key = field.split("[", 1)[0].replace(".", "_")
        if key.startswith("holidays"):
            key = "holidays"
        key = {"holidayCountry": "holiday_country"}.get(key, key)
        found.setdefault(key, f"{field}: {message}" if "[" in field else message)
    return found or {"name": error.message}


@router.post(LEVELS + "/calendars/{calendar_id}/delete")
async def delete_calendar(
    request: Request, calendar_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    try:
        await calendars.delete_calendar(db, calendar_id)
    except AppError as error:
        return _redirect(request, LEVELS, error.message)
    return _redirect(request, LEVELS, "Calendar deleted.")


# -- canned replies ------------------------------------------------------------------------------


async def _canned_page(
    request: Request,
    db: AsyncSession,
    agent: Any,
    *,
    form: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    rows = await canned.list_for(db, user_id=agent.user.id)
    return render(
        request,
        "agent/canned.html",
        {
            "replies": rows,
            "is_admin": agent.is_admin,
            "form": form or {"title": "", "body": "", "shared": False},
            "error": error,
            "placeholders": canned.PLACEHOLDERS,
        },
        status=status,
    )


@router.get(CANNED)
async def canned_page(request: Request, agent: PageAgent, db: DbSession) -> Response:
    return await _canned_page(request, db, agent)


@router.post(CANNED)
async def create_canned(
    request: Request, agent: PageAgent, db: DbSession, posted: PostedForm
) -> Response:
    form: dict[str, Any] = {
        "title": str(posted.get("title", "")),
        "body": str(posted.get("body", "")),
        "shared": posted.get("shared") == "on",
    }
    try:
        await canned.create(
            db,
            owner_id=agent.user.id,
            is_admin=agent.is_admin,
            title=form["title"][:200],
            body=form["body"][:20_000],
            shared=form["shared"],
        )
    except AppError as error:
        return await _canned_page(
            request, db, agent, form=form, error=error.message, status=error.status_code
        )
    return _redirect(request, CANNED, f"Reply “{form['title'].strip()}” saved.")


@router.post(CANNED + "/{canned_id}/delete")
async def delete_canned(
    request: Request, canned_id: str, agent: PageAgent, db: DbSession, posted: PostedForm
) -> Response:
    try:
        await canned.delete(db, canned_id, user_id=agent.user.id, is_admin=agent.is_admin)
    except AppError as error:
        return _redirect(request, CANNED, error.message)
    return _redirect(request, CANNED, "Reply deleted.")


# -- calendar edit -------------------------------------------------------------------------------


def _calendar_edit_page(
    request: Request,
    calendar_id: str,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "admin/calendar_edit.html",
        {
            "calendar_id": calendar_id,
            "calendar_form": form,
            "calendar_errors": errors or {},
            "days": DAY_LABELS,
        },
        status=status,
    )


@router.get(LEVELS + "/calendars/{calendar_id}")
async def edit_calendar(
    request: Request, calendar_id: str, admin: PageAdmin, db: DbSession
) -> Response:
    row = await calendars.get_calendar(db, calendar_id)
    return _calendar_edit_page(request, row.id, _calendar_form(calendars.public(row)))


@router.post(LEVELS + "/calendars/{calendar_id}")
async def update_calendar(
    request: Request, calendar_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    values = _calendar_values(posted)
    await calendars.get_calendar(db, calendar_id)  # 404 before any field error
    try:
        await calendars.update_calendar(db, calendar_id, values)
    except AppError as error:
        return _calendar_edit_page(
            request,
            calendar_id,
            _calendar_form(values),
            _calendar_errors(error),
            status=error.status_code,
        )
    return _redirect(request, LEVELS, f"Calendar “{values['name'].strip()}” saved.")


# -- SLA policies --------------------------------------------------------------------------------

PRIORITIES = {"low": "Low", "normal": "Normal", "high": "High", "urgent": "Urgent"}
EMPTY_POLICY: dict[str, Any] = {
    "name": "",
    "position": "0",
    "priority": [],
    "form_ids": [],
    "team_ids": [],
    "calendar_id": "",
    "first_response_minutes": "60",
    "resolution_minutes": "480",
}
_POLICY_FIELDS = {
    "name": "policy_name",
    "position": "position",
    "calendarId": "calendar_id",
    "firstResponseMinutes": "first_response_minutes",
    "resolutionMinutes": "resolution_minutes",
    "conditions.priority": "priority",
    "conditions.formId": "form_ids",
    "conditions.teamId": "team_ids",
}


async def _forms(db: AsyncSession) -> list[dict[str, str]]:
    rows = await db.execute(select(Form.id, Form.name).order_by(Form.name, Form.id))
    return [{"id": form_id, "name": name} for form_id, name in rows]


def _policy_values(posted: PostedForm) -> dict[str, Any]:
    return {
        "name": str(posted.get("policy_name", "")),
        "position": str(posted.get("position", "0")).strip(),
        "priority": [str(v) for v in posted.getlist("priority")],
        "form_ids": [str(v) for v in posted.getlist("form_ids")],
        "team_ids": [str(v) for v in posted.getlist("team_ids")],
        "calendar_id": str(posted.get("calendar_id", "")),
        "first_response_minutes": str(posted.get("first_response_minutes", "")).strip(),
        "resolution_minutes": str(posted.get("resolution_minutes", "")).strip(),
    }


def _whole_number(text: str, field: str, errors: dict[str, str]) -> int:
    try:
        return int(text)
    except ValueError:
        errors[field] = "a whole number"
        return 0


def _policy_api(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values in the service's (API) names, and the errors of numbers not numbers."""
    errors: dict[str, str] = {}
    api = {
        "name": values["name"][:200],
        "position": _whole_number(values["position"] or "0", "position", errors),
        "conditions": {
            "priority": values["priority"],
            "formId": values["form_ids"],
            "teamId": values["team_ids"],
        },
        "calendarId": values["calendar_id"],
        "firstResponseMinutes": _whole_number(
            values["first_response_minutes"], "first_response_minutes", errors
        ),
        "resolutionMinutes": _whole_number(
            values["resolution_minutes"], "resolution_minutes", errors
        ),
    }
    if not 0 <= api["position"] <= 100_000:
        errors.setdefault("position", "between 0 and 100000")
    return api, errors


def _policy_errors(error: AppError) -> dict[str, str]:
    found: dict[str, str] = {}
    for field, message in _errors_by_field(error).items():
        key = _POLICY_FIELDS.get(field.split("[", 1)[0], "policy_name")
        found.setdefault(key, message)
    return found or {"policy_name": error.message}


def _policy_form(policy: dict[str, Any]) -> dict[str, Any]:
    conditions = policy["conditions"]
    return {
        "name": policy["name"],
        "position": str(policy["position"]),
        "priority": conditions.get("priority", []),
        "form_ids": conditions.get("formId", []),
        "team_ids": conditions.get("teamId", []),
        "calendar_id": policy["calendarId"],
        "first_response_minutes": str(policy["firstResponseMinutes"]),
        "resolution_minutes": str(policy["resolutionMinutes"]),
    }


async def _policy_choices(db: AsyncSession) -> dict[str, Any]:
    return {
        "priorities": PRIORITIES,
        "forms": await _forms(db),
        "teams": await teams.list_teams(db),
        "calendars": [calendars.public(row) for row in await calendars.list_calendars(db)],
    }


async def _save_policy(
    request: Request, db: AsyncSession, posted: PostedForm, policy_id: str | None
) -> Response:
    values = _policy_values(posted)
    api, errors = _policy_api(values)
    status = 400
    if not errors:
        try:
            if policy_id is None:
                await policies.create_policy(db, api)
            else:
                await policies.update_policy(db, policy_id, api)
        except AppError as error:
            discard_changes(db)
            errors, status = _policy_errors(error), error.status_code
    if errors:
        if policy_id is None:
            return await _levels_page(
                request, db, policy_form=values, policy_errors=errors, status=status
            )
        return render(
            request,
            "admin/policy_edit.html",
            {"policy_id": policy_id, "policy_form": values, "policy_errors": errors}
            | await _policy_choices(db),
            status=status,
        )
    verb = "created" if policy_id is None else "saved"
    return _redirect(request, LEVELS, f"SLA policy “{values['name'].strip()}” {verb}.")


@router.post(LEVELS + "/policies")
async def create_policy(
    request: Request, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    return await _save_policy(request, db, posted, None)


@router.get(LEVELS + "/policies/{policy_id}")
async def edit_policy(
    request: Request, policy_id: str, admin: PageAdmin, db: DbSession
) -> Response:
    policy = policies.public(await policies.get_policy(db, policy_id))
    return render(
        request,
        "admin/policy_edit.html",
        {"policy_id": policy_id, "policy_form": _policy_form(policy), "policy_errors": {}}
        | await _policy_choices(db),
    )


@router.post(LEVELS + "/policies/{policy_id}")
async def update_policy(
    request: Request, policy_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    await policies.get_policy(db, policy_id)
    return await _save_policy(request, db, posted, policy_id)


@router.post(LEVELS + "/policies/{policy_id}/delete")
async def delete_policy(
    request: Request, policy_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    await policies.delete_policy(db, policy_id)
    return _redirect(request, LEVELS, "SLA policy deleted.")
