"""Service-level pages: teams and business-hours calendars (admins), canned replies (agents).

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
from tekudasai.sla import calendars
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
        },
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
        return await _levels_page(
            request,
            db,
            team_form=values,
            team_errors=_errors_by_field(error) or {"name": error.message},
            status=error.status_code,
        )
    return _redirect(request, LEVELS, f"Team “{values['name'].strip()}” created.")


@router.post(LEVELS + "/teams/{team_id}")
async def update_team(
    request: Request, team_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    values = _team_values(posted)
    changes = {
        "name": values["name"],
        "memberIds": values["member_ids"],
        "assignment": values["assignment"] if values["assignment"] in ASSIGNMENTS else None,
    }
    try:
        await teams.update_team(db, team_id, changes)
    except AppError as error:
        return _redirect(request, LEVELS, f"The team was not changed: {error.message}")
    return _redirect(request, LEVELS, "Team saved.")


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
