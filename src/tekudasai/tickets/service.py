"""Tickets: filing, reading, the agent's changes and assignment.

Every change locks the ticket row (SELECT … FOR UPDATE) before reading what it changes, and
stages its audit row in the same session, so the change and its record commit together and
concurrent changes to one ticket are applied one after another, none lost.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Table,
    Text,
    bindparam,
    case,
    delete,
    false,
    func,
    literal_column,
    null,
    select,
    text,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from tekudasai.accounts.dependencies import STAFF_ROLES, Caller
from tekudasai.accounts.joined import JoinedRead, joined_read
from tekudasai.accounts.models import User
from tekudasai.core.errors import ValidationFailed
from tekudasai.db.raw import RawStatement
from tekudasai.forms import engine as forms_engine
from tekudasai.forms import service as forms_service
from tekudasai.forms.errors import FormNotFound, InvalidFormData
from tekudasai.forms.models import Form, FormVersion
from tekudasai.jobs.models import Job
from tekudasai.tickets import audit, events, rendering, workflow
from tekudasai.tickets.errors import FormClosed, InvalidAssignee, TicketNotFound
from tekudasai.tickets.models import Channel, LogAction, Ticket, TicketPriority, TicketStatus
from tekudasai.uploads.models import TicketUpload

MAX_SUMMARY = 500


@dataclass(frozen=True)
class TicketRow:
    """A ticket with the form version it was filed with (and, for agents, the people)."""

    ticket: Ticket
    form: Form
    version: FormVersion
    reporter: User | None = None
    assignee: User | None = None


def clean_summary(summary: str) -> str:
    summary = summary.strip()
    if not 1 <= len(summary) <= MAX_SUMMARY:
        message = "Summary is required" if not summary else f"At most {MAX_SUMMARY} characters"
        raise ValidationFailed(
            f"summary: {message}.", errors=[{"field": "summary", "message": message}]
        )
    return summary


# -- filing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Enabled:
    """An enabled form's current version as this process last saw it, with its plan."""

    version: int
    created_at: datetime
    plan: forms_engine.FormPlan


# form id -> its enabled version as last read, per process (each worker has its own). Only a
# hint: a ticket filed on it goes through the guarded INSERT, which checks it is still true.
_enabled: dict[str, _Enabled] = {}
_ENABLED_MAX = 512


async def create_ticket(
    db: AsyncSession,
    *,
    reporter_id: str,
    form_id: str,
    summary: str,
    form_response: dict[str, Any],
    channel: Channel = Channel.WEB,
    extra_upload_ids: list[str] | None = None,
) -> Ticket:
    """File a ticket against the form's current version with the validated response.

    Hot path: the form's enabled version as this process last saw it, validated with its
    cached plan, and one INSERT that files only if that is still the form's current, enabled
    version (`create_statement(guarded=True)`). It saves the read of the version, which the
    transaction of #13 had made cost too much: measured (bench/request_overhead.py) POST
    /api/tickets/my at 4 round trips instead of 5 (BEGIN, session, INSERT, COMMIT), 1.80 ms
    instead of 1.92 ms in process. When the INSERT files nothing (form edited, disabled or deleted
    since) or the answers fail the remembered rules, the entry is forgotten and the ticket
    goes the long way: read the version, validate with its plan, insert. So a stale entry never
    files against an old version or a disabled form, and the 404 and 400 answers are those of
    the current form.

    `channel` records where it came from (also in the ticket.created event); `extra_upload_ids`
    are uploads of the reporter's linked to the ticket besides those its answers name (a
    mail's attachments)."""
    summary = clean_summary(summary)
    channel = Channel(channel)
    extra_upload_ids = extra_upload_ids or []
    seen = _enabled.get(form_id)
    if seen is not None:
        try:
            ticket = await _file(
                db,
                reporter_id=reporter_id,
                form_id=form_id,
                summary=summary,
                form_response=form_response,
                seen=seen,
                channel=channel,
                extra_upload_ids=extra_upload_ids,
            )
        except InvalidFormData:
            ticket = None  # judged by rules that may be old: the current form decides
        if ticket is not None:
            return await _created(db, ticket)
        if _enabled.get(form_id) is seen:
            del _enabled[form_id]
    form_id, version_number, plan = await enabled_form_plan(db, form_id=form_id)
    ticket = await _file(
        db,
        reporter_id=reporter_id,
        form_id=form_id,
        summary=summary,
        form_response=form_response,
        version=version_number,
        plan=plan,
        channel=channel,
        extra_upload_ids=extra_upload_ids,
    )
    assert ticket is not None  # the unguarded INSERT … RETURNING returns its row
    return await _created(db, ticket)


# The session info key under which reactors find the ticket being created.
NEW_TICKET = "tk_new_ticket"
# Where `_file` leaves the creation probes' values for `_created` (events.creation_probes).
CREATION_PROBES = "tk_creation_probes"


async def _created(db: AsyncSession, ticket: Ticket) -> Ticket:
    """The reactors' turn on a new ticket (its event was recorded by the INSERT itself).

    The filed object joins the session as the persistent row it now is (no read): reactors
    find it in the identity map, a change through the ticket service locks and refreshes this
    very object, and what the SLA clock writes it sets here too. So the caller gets the ticket
    as the reactors left it without reading it again."""
    if not events.has_reactors():
        return ticket
    make_transient_to_detached(ticket)
    db.add(ticket)
    change = events.Change(
        ticket.id,
        events.EventType.TICKET_CREATED,
        ticket.reporter_id,
        {"channel": ticket.channel},
        probes=db.info.pop(CREATION_PROBES, None) or {},
    )
    db.info[NEW_TICKET] = ticket
    try:
        await events.react(db, change)
    finally:
        db.info.pop(NEW_TICKET, None)
    return ticket


async def _file(
    db: AsyncSession,
    *,
    reporter_id: str,
    form_id: str,
    summary: str,
    form_response: dict[str, Any],
    seen: _Enabled | None = None,
    version: int = 0,
    plan: forms_engine.FormPlan | None = None,
    channel: Channel = Channel.WEB,
    extra_upload_ids: list[str] | None = None,
) -> Ticket | None:
    """Validate and insert against a version just read (`version`, `plan`) or, guarded, one
    remembered (`seen`); None when the guard finds the remembered version no longer current."""
    if seen is not None:
        version, plan = seen.version, seen.plan
    assert plan is not None
    cleaned, upload_ids = await forms_service.validate_for_ticket(
        db, plan=plan, response=form_response, reporter_id=reporter_id
    )
    # A `mapsTo: priority` answer sets the priority in the INSERT itself.
    priority = forms_engine.mapped_priority(plan, cleaned)
    prefiller = events.creation_prefill()
    prefill = (
        prefiller(priority=priority or TicketPriority.NORMAL.value, form_id=form_id)
        if prefiller is not None
        else None
    )
    ticket = Ticket(
        reporter_id=reporter_id,
        assignee_id=None,
        summary=summary,
        status=TicketStatus.OPEN.value,
        form_id=form_id,
        form_version=version,
        form_response=cleaned,
        form_open=False,
        channel=channel.value,
        priority=priority or TicketPriority.NORMAL.value,
        team_id=None,
        tags=[],
        # Every column set: the object joins the session as the stored row (see _created).
        first_responded_at=None,
        resolved_at=None,
        sla_policy_id=None,
        sla_state=None,
        sla_started_at=None,
        sla_paused=[],
        sla_first_response_due_at=None,
        sla_resolution_due_at=None,
        sla_due_at=None,
        sla_fired=[],
    )
    values: dict[str, Any] = {
        "reporter_id": reporter_id,
        "summary": summary,
        "form_id": form_id,
        "form_version": version,
        "form_response": json.dumps(cleaned),
        "log_details": json.dumps(audit.created_details(ticket)),
        "upload_ids": json.dumps(list(dict.fromkeys([*upload_ids, *(extra_upload_ids or [])]))),
        "channel": channel.value,
        "priority": priority,
    }
    shape = _prefill_shape(prefill)
    if prefill is not None:
        values.update(_prefill_values(prefill))
    if seen is None:
        row = await create_statement(prefill=shape).fetchrow(db, **values)
    else:
        row = await create_statement(guarded=True, prefill=shape).fetchrow(
            db, **values, form_created_at=seen.created_at
        )
    if row is None:
        return None
    events.wake_after_commit(db, row["event_id"])
    db.info[CREATION_PROBES] = {name: row[name] for name, _ in events.creation_probes()}
    if prefill is not None and row["prefilled"]:  # the probe held: the INSERT wrote them
        for key, value in prefill.columns.items():
            setattr(ticket, key, value)
    ticket.id, ticket.created_at = row["id"], row["created_at"]
    ticket.updated_at = row["updated_at"]
    return ticket


# What a prefill changes in the statement's text: its probe, columns and job name.
PrefillShape = tuple[str, tuple[str, ...], str | None]


def _prefill_shape(prefill: events.Prefill | None) -> PrefillShape | None:
    if prefill is None:
        return None
    return (prefill.probe, tuple(prefill.columns), prefill.job[0] if prefill.job else None)


def _prefill_values(prefill: events.Prefill) -> dict[str, Any]:
    values = {f"pf_{key}": value for key, value in prefill.columns.items()}
    values["pf_expect"] = prefill.expect
    values["created_at"] = prefill.created_at
    if prefill.job is not None:
        values["pf_run_after"] = prefill.job[1]
    return values


def create_statement(*, guarded: bool = False, prefill: PrefillShape | None = None) -> RawStatement:
    return _create_statement(guarded, events.creation_probes(), prefill)


@functools.cache
def _create_statement(
    guarded: bool, probes: tuple[tuple[str, str], ...], prefill: PrefillShape | None
) -> RawStatement:
    """The ticket, its audit row and its upload links in one statement (one round trip),
    inside the request's transaction like every other. Built once; JSON values travel as text
    and are cast by the database.

    `guarded`: insert only if :form_version (created at :form_created_at) is the form's current
    version and the form is enabled: INSERT … SELECT … FROM forms, so when it is not, nothing is
    inserted (no ticket, no log row, no links) and no row comes back."""
    table = cast(Table, Ticket.__table__)

    def json_value(name: str) -> Any:
        return sql_cast(bindparam(name, type_=Text), JSONB)

    # Callers that name no channel (older ones) file on the web's.
    channel = func.coalesce(
        bindparam("channel", type_=Text), literal_column(f"'{Channel.WEB.value}'")
    )
    row: dict[str, Any] = {
        "reporter_id": bindparam("reporter_id", type_=Text),
        "summary": bindparam("summary", type_=Text),
        "status": literal_column(f"'{TicketStatus.OPEN.value}'"),
        "form_id": bindparam("form_id", type_=Text),
        "form_version": bindparam("form_version", type_=Integer),
        "form_response": json_value("form_response"),
        "form_open": false(),
        "channel": channel,
        # None (no mapped answer): the default.
        "priority": func.coalesce(
            bindparam("priority", type_=Text),
            literal_column(f"'{TicketPriority.NORMAL.value}'"),
        ),
    }
    guard = None
    if prefill is not None:
        # The reactor's columns, written only if its probe still reads what it expected: the
        # probe evaluated once (a CTE), not once per column.
        probe, columns, _job = prefill
        guard = select(
            (
                literal_column(f"({dict(probes)[probe]})") == bindparam("pf_expect", type_=Text)
            ).label("held")
        ).cte("prefill_guard")
        held = select(guard.c.held).scalar_subquery()
        row["created_at"] = bindparam("created_at", type_=table.c.created_at.type)
        row["updated_at"] = bindparam("created_at", type_=table.c.created_at.type)
        for key in columns:
            row[key] = case((held, bindparam(f"pf_{key}", type_=table.c[key].type)), else_=null())
    if guarded:
        current = (
            select(*(v.label(k) for k, v in row.items()))
            .select_from(Form)
            .join(
                FormVersion,
                (FormVersion.form_id == Form.id) & (FormVersion.version == Form.version),
            )
            .where(
                Form.id == bindparam("form_id", type_=Text),
                Form.version == bindparam("form_version", type_=Integer),
                Form.disabled.is_(False),
                FormVersion.created_at
                == bindparam("form_created_at", type_=FormVersion.created_at.type),
            )
        )
        filed = insert(table).from_select(list(row), current)
    else:
        filed = insert(table).values(**row)
    created = filed.returning(table.c.id, table.c.created_at, table.c.updated_at).cte("created")
    log = audit.created_row(
        ticket_id=created.c.id,
        user_id=bindparam("reporter_id", type_=Text),
        details=json_value("log_details"),
    ).cte("create_log")
    links = (
        insert(cast(Table, TicketUpload.__table__))
        .from_select(
            ["ticket_id", "upload_id"],
            select(created.c.id, func.jsonb_array_elements_text(json_value("upload_ids"))),
        )
        .cte("create_links")
    )
    event, event_job = events.recorded(
        ticket_id=created.c.id,
        actor_id=bindparam("reporter_id", type_=Text),
        type=literal_column(f"'{events.EventType.TICKET_CREATED.value}'"),
        internal=false(),
        data=func.jsonb_build_object(literal_column("'channel'"), channel),
    )
    probed: list[Any] = [literal_column(f"({sql})").label(name) for name, sql in probes]
    if guard is not None:
        probed.append(select(guard.c.held).scalar_subquery().label("prefilled"))
    statement = (
        select(created, event.c.id.label("event_id"), *probed)
        .add_cte(log)
        .add_cte(links)
        .add_cte(event_job)
    )
    if guard is not None and prefill is not None and prefill[2] is not None:
        run_after = bindparam("pf_run_after", type_=table.c.created_at.type)
        prefill_job = (
            insert(cast(Table, Job.__table__))
            .from_select(
                ["name", "args", "run_after"],
                select(
                    literal_column("'" + prefill[2].replace("'", "''") + "'"),
                    func.jsonb_build_object(literal_column("'ticketId'"), created.c.id),
                    run_after,
                ).where(select(guard.c.held).scalar_subquery()),
            )
            .cte("prefill_job")
        )
        statement = statement.add_cte(prefill_job)
    return RawStatement(statement)


@functools.cache
def _enabled_version_statement() -> RawStatement:
    return RawStatement(
        select(FormVersion.form_id, FormVersion.version, FormVersion.created_at)
        .join(Form, (FormVersion.form_id == Form.id) & (FormVersion.version == Form.version))
        .where(Form.id == bindparam("form_id", type_=Text), Form.disabled.is_(False))
    )


async def enabled_form_plan(
    db: AsyncSession, *, form_id: str
) -> tuple[str, int, forms_engine.FormPlan]:
    """An enabled form's id, current version and that version's plan; 404 when the form is
    missing or disabled. One short read: the definition only when its plan is not cached.
    Remembered for `create_ticket`'s hot path."""
    row = await _enabled_version_statement().fetchrow(db, form_id=form_id)
    if row is None:
        _enabled.pop(form_id, None)
        raise FormNotFound()
    plan = await forms_service.plan_for(
        db, form_id=row["form_id"], version=row["version"], created_at=row["created_at"]
    )
    _enabled.pop(row["form_id"], None)  # re-added last: the oldest entry goes first
    _enabled[row["form_id"]] = _Enabled(row["version"], row["created_at"], plan)
    if len(_enabled) > _ENABLED_MAX:
        del _enabled[next(iter(_enabled))]
    return row["form_id"], row["version"], plan


def answer_upload_ids(response: dict[str, Any]) -> set[str]:
    """The uploads a stored response's file answers name (stored as upload objects)."""
    return {
        value["filename"]
        for value in response.values()
        if isinstance(value, dict) and isinstance(value.get("filename"), str) and "url" in value
    }


async def _link_uploads(
    db: AsyncSession, *, ticket_id: int, upload_ids: list[str], previous: set[str]
) -> None:
    """Link the uploads the new response references; unlink those only the previous response
    named. Other links (a mail's attachments) are not the answers' to drop."""
    dropped = previous - set(upload_ids)
    if dropped:
        await db.execute(
            delete(TicketUpload).where(
                TicketUpload.ticket_id == ticket_id, TicketUpload.upload_id.in_(dropped)
            )
        )
    if upload_ids:
        await db.execute(
            insert(TicketUpload)
            .values([{"ticket_id": ticket_id, "upload_id": u} for u in dict.fromkeys(upload_ids)])
            .on_conflict_do_nothing()
        )


async def _validated_response(
    db: AsyncSession, ticket: Ticket, response: dict[str, Any], *, editor_id: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Check a new response against the version the ticket was filed with (an agent's edit may
    attach the agent's own uploads: `editor_id`)."""
    version = await forms_service.get_form_version(
        db, form_id=ticket.form_id, version=ticket.form_version
    )
    cleaned, upload_ids = await forms_service.validate_for_ticket(
        db,
        plan=forms_service.plan_of(version),
        response=response,
        reporter_id=ticket.reporter_id,
        editor_id=editor_id,
    )
    return cleaned, list(upload_ids)


# -- reading ----------------------------------------------------------------------------------


def with_form() -> Any:
    return (
        select(Ticket, Form, FormVersion)
        .join(Form, Form.id == Ticket.form_id)
        .join(
            FormVersion,
            (FormVersion.form_id == Ticket.form_id) & (FormVersion.version == Ticket.form_version),
        )
    )


@functools.cache
def _my_ticket_statement() -> Any:
    return with_form().where(
        Ticket.id == bindparam("ticket_id"), Ticket.reporter_id == bindparam("reporter_id")
    )


@functools.cache
def _ticket_statement() -> Any:
    reporter, assignee = aliased(User), aliased(User)
    return (
        with_form()
        .add_columns(reporter, assignee)
        .outerjoin(reporter, reporter.id == Ticket.reporter_id)
        .outerjoin(assignee, assignee.id == Ticket.assignee_id)
        .where(Ticket.id == bindparam("ticket_id"))
    )


async def get_my_ticket(db: AsyncSession, *, ticket_id: int, reporter_id: str) -> TicketRow:
    params = {"ticket_id": ticket_id, "reporter_id": reporter_id}
    row = (await db.execute(_my_ticket_statement(), params)).first()
    if row is None:
        raise TicketNotFound()
    return TicketRow(ticket=row[0], form=row[1], version=row[2])


@functools.cache
def _my_rendered_read() -> JoinedRead:
    return joined_read(
        rendering.rendered_head().where(
            Ticket.id == bindparam("ticket_id"), Ticket.reporter_id == bindparam("reporter_id")
        ),
        user_params=("reporter_id",),
    )


async def get_callers_ticket_rendered(db: AsyncSession, caller: Caller, *, ticket_id: int) -> str:
    """The caller's own ticket with its form, as the API's JSON text; the caller's lookup
    goes with the read (accounts/joined.py)."""
    _, rows = await caller.fetch(db, _my_rendered_read(), ticket_id=ticket_id)
    if not rows:
        raise TicketNotFound()
    return (await rendering.with_forms(db, rows))[0]


async def get_ticket(db: AsyncSession, *, ticket_id: int) -> TicketRow:
    """One ticket with its form, reporter and assignee: one query."""
    row = (await db.execute(_ticket_statement(), {"ticket_id": ticket_id})).first()
    if row is None:
        raise TicketNotFound()
    return TicketRow(ticket=row[0], form=row[1], version=row[2], reporter=row[3], assignee=row[4])


async def ensure_ticket(
    db: AsyncSession, *, ticket_id: int, reporter_id: str | None = None
) -> None:
    """404 unless the ticket exists (and, given a reporter, was filed by them)."""
    query = select(Ticket.id).where(Ticket.id == ticket_id)
    if reporter_id is not None:
        query = query.where(Ticket.reporter_id == reporter_id)
    if await db.scalar(query) is None:
        raise TicketNotFound()


async def lock_ticket(
    db: AsyncSession, *, ticket_id: int, reporter_id: str | None = None
) -> Ticket:
    """The ticket row, locked until the transaction ends; 404 when absent (or not theirs).
    A ticket this transaction is filing (a reactor acting on it) needs no lock: no other
    transaction can see it before this one commits."""
    new = db.info.get(NEW_TICKET)
    if new is not None and new.id == ticket_id and reporter_id in (None, new.reporter_id):
        return cast(Ticket, new)
    query = (
        select(Ticket)
        .where(Ticket.id == ticket_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if reporter_id is not None:
        query = query.where(Ticket.reporter_id == reporter_id)
    ticket = await db.scalar(query)
    if ticket is None:
        raise TicketNotFound()
    return ticket


# -- changing ---------------------------------------------------------------------------------


class _Unchanged:
    """A field the caller leaves alone (where None is a value: no team)."""


UNCHANGED: Any = _Unchanged()
MAX_TAGS = 20
MAX_TAG_LENGTH = 50


def normal_tag(tag: str) -> str:
    """Tags compare trimmed and lower-cased (`Printer ` and `printer` are one tag)."""
    return tag.strip().lower()


def clean_tags(tags: list[str]) -> list[str]:
    """Normalised, without repeats, in the order given; 400 for an empty or too long tag."""
    cleaned = list(dict.fromkeys(normal_tag(tag) for tag in tags))
    bad = next((t for t in cleaned if not 1 <= len(t) <= MAX_TAG_LENGTH), None)
    if bad is not None or len(cleaned) > MAX_TAGS:
        message = (
            f"At most {MAX_TAGS} tags"
            if bad is None
            else f"A tag has 1 to {MAX_TAG_LENGTH} characters"
        )
        raise ValidationFailed(f"tags: {message}.", errors=[{"field": "tags", "message": message}])
    return cleaned


async def check_team(db: AsyncSession, team_id: str) -> None:
    # teams sit above tickets (they name agents): asked in SQL, not through their models.
    if await db.scalar(text("SELECT 1 FROM teams WHERE id = :id"), {"id": team_id}) is None:
        raise ValidationFailed(
            "teamId: No such team.", errors=[{"field": "teamId", "message": "No such team"}]
        )


_REOPENED_FROM = frozenset({TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value})
_REOPENED_TO = frozenset(
    {TicketStatus.OPEN.value, TicketStatus.IN_PROGRESS.value, TicketStatus.PENDING.value}
)


async def mark_resolution(db: AsyncSession, ticket: Ticket, old: str, new: str) -> None:
    """Keep `resolved_at` with a status change. Resolving stamps the database's now() in the
    UPDATE that writes the status (flushed here, before the change's event: its reactors see
    the stamp); reopening a resolved or closed ticket clears it; closing keeps it."""
    if new == TicketStatus.RESOLVED.value:
        ticket.resolved_at = func.now()  # type: ignore[assignment]
        await db.flush()
        # The same now() came back with RETURNING as updated_at: no read for the value.
        set_committed_value(ticket, "resolved_at", ticket.updated_at)
    elif old in _REOPENED_FROM and new in _REOPENED_TO:
        ticket.resolved_at = None


async def update_ticket(
    db: AsyncSession,
    *,
    ticket_id: int,
    actor_id: str | None,
    summary: str | None = None,
    status: str | None = None,
    form_response: dict[str, Any] | None = None,
    priority: str | None = None,
    team_id: str | None = UNCHANGED,
    tags: list[str] | None = None,
) -> Ticket:
    """An agent's (or an automation's) edit: status through the workflow, summary, response,
    priority, team, tags; closes the form. Fields left None (team: UNCHANGED) stay."""
    new_summary = clean_summary(summary) if summary is not None else None
    new_tags = clean_tags(tags) if tags is not None else None
    if priority is not None:
        priority = TicketPriority(priority).value
    if team_id is not UNCHANGED and team_id is not None:
        await check_team(db, team_id)
    ticket = await lock_ticket(db, ticket_id=ticket_id)
    status_changes = status is not None and workflow.check_transition(ticket.status, status)
    response = None
    if form_response is not None:
        response = await _validated_response(db, ticket, form_response, editor_id=actor_id)

    if status_changes and status is not None:
        old = ticket.status
        ticket.status = status
        await mark_resolution(db, ticket, old, status)
        audit.record(
            db,
            ticket_id=ticket.id,
            user_id=actor_id,
            action_type=LogAction.UPDATE,
            action=workflow.status_change_text(old, status),
            details={"status": {"from": old, "to": status}},
        )
        await events.emit(
            db,
            type=events.EventType.STATUS_CHANGED,
            ticket_id=ticket.id,
            actor_id=actor_id,
            data={"changes": {"status": {"from": old, "to": status}}},
        )
    fields: dict[str, Any] = {}
    if new_summary is not None and new_summary != ticket.summary:
        fields["summary"] = {"from": ticket.summary, "to": new_summary}
        ticket.summary = new_summary
    if priority is not None and priority != ticket.priority:
        fields["priority"] = {"from": ticket.priority, "to": priority}
        ticket.priority = priority
    if team_id is not UNCHANGED and team_id != ticket.team_id:
        fields["teamId"] = {"from": ticket.team_id, "to": team_id}
        ticket.team_id = team_id
    if new_tags is not None and new_tags != list(ticket.tags):
        fields["tags"] = {"from": list(ticket.tags), "to": new_tags}
        ticket.tags = new_tags
    if response is not None:
        cleaned, upload_ids = response
        diff = audit.changes(ticket.form_response, cleaned)
        if diff:
            fields["formResponse"] = diff
            previous = answer_upload_ids(ticket.form_response)
            ticket.form_response = cleaned
            await _link_uploads(db, ticket_id=ticket.id, upload_ids=upload_ids, previous=previous)
    if ticket.form_open:
        fields["formOpen"] = {"from": True, "to": False}
        ticket.form_open = False
    if fields:
        audit.record(
            db,
            ticket_id=ticket.id,
            user_id=actor_id,
            action_type=LogAction.UPDATE,
            action="Ticket updated: " + ", ".join(fields),
            details=fields,
        )
        await events.emit(
            db,
            type=events.EventType.TICKET_UPDATED,
            ticket_id=ticket.id,
            actor_id=actor_id,
            data={"changes": fields},
        )
    await db.flush()
    return ticket


async def reporter_update_response(
    db: AsyncSession, *, ticket_id: int, reporter_id: str, form_response: dict[str, Any]
) -> Ticket:
    """The reporter's one edit of the answers after an agent re-opened the form."""
    ticket = await lock_ticket(db, ticket_id=ticket_id, reporter_id=reporter_id)
    if not ticket.form_open:
        raise FormClosed()
    cleaned, upload_ids = await _validated_response(db, ticket, form_response)
    fields: dict[str, Any] = {"formOpen": {"from": True, "to": False}}
    diff = audit.changes(ticket.form_response, cleaned)
    if diff:
        fields["formResponse"] = diff
    previous = answer_upload_ids(ticket.form_response)
    ticket.form_response = cleaned
    ticket.form_open = False
    await _link_uploads(db, ticket_id=ticket.id, upload_ids=upload_ids, previous=previous)
    audit.record(
        db,
        ticket_id=ticket.id,
        user_id=reporter_id,
        action_type=LogAction.UPDATE,
        action="Form response updated by the reporter",
        details=fields,
    )
    await events.emit(
        db,
        type=events.EventType.TICKET_UPDATED,
        ticket_id=ticket.id,
        actor_id=reporter_id,
        data={"changes": fields, "byReporter": True},
    )
    await db.flush()
    return ticket


async def delete_ticket(db: AsyncSession, *, ticket_id: int, actor_id: str) -> Ticket:
    """Delete the ticket (comments and upload links go with it); the audit trail stays."""
    ticket = await lock_ticket(db, ticket_id=ticket_id)
    audit.deleted(db, ticket, user_id=actor_id)
    await db.delete(ticket)
    await db.flush()
    return ticket


async def _set_assignee(
    db: AsyncSession, ticket: Ticket, *, actor_id: str | None, assignee_id: str | None
) -> Ticket:
    old = ticket.assignee_id
    if old == assignee_id:
        return ticket
    ticket.assignee_id = assignee_id
    audit.record(
        db,
        ticket_id=ticket.id,
        user_id=actor_id,
        action_type=LogAction.ASSIGN if assignee_id else LogAction.UNASSIGN,
        # Names are personal data (encrypted at rest): the text names no one, details hold ids.
        action="Ticket assigned" if assignee_id else "Ticket unassigned",
        details={"assigneeId": {"from": old, "to": assignee_id}},
    )
    await events.emit(
        db,
        type=events.EventType.ASSIGNED,
        ticket_id=ticket.id,
        actor_id=actor_id,
        data={"changes": {"assigneeId": {"from": old, "to": assignee_id}}},
    )
    await db.flush()
    return ticket


async def toggle_assignment(db: AsyncSession, *, ticket_id: int, actor_id: str) -> Ticket:
    """Unassign when anyone is assigned (as the original did), else assign the caller."""
    ticket = await lock_ticket(db, ticket_id=ticket_id)
    target = None if ticket.assignee_id else actor_id
    return await _set_assignee(db, ticket, actor_id=actor_id, assignee_id=target)


async def assign(
    db: AsyncSession, *, ticket_id: int, actor_id: str | None, assignee_id: str | None
) -> Ticket:
    """Assign to a given agent or admin (None unassigns)."""
    if assignee_id is not None:
        role = await db.scalar(
            select(User.role).where(User.id == assignee_id, User.banned.is_(False))
        )
        if role not in STAFF_ROLES:
            raise InvalidAssignee(
                errors=[{"field": "assigneeId", "message": "Not an agent or admin"}]
            )
    ticket = await lock_ticket(db, ticket_id=ticket_id)
    return await _set_assignee(db, ticket, actor_id=actor_id, assignee_id=assignee_id)


async def open_form(db: AsyncSession, *, ticket_id: int, actor_id: str) -> Ticket:
    """Let the reporter edit the answers once more."""
    ticket = await lock_ticket(db, ticket_id=ticket_id)
    if not ticket.form_open:
        ticket.form_open = True
        audit.record(
            db,
            ticket_id=ticket.id,
            user_id=actor_id,
            action_type=LogAction.OPEN_FORM,
            action="Form re-opened for the reporter",
            details={"formOpen": {"from": False, "to": True}},
        )
        await events.emit(
            db,
            type=events.EventType.TICKET_UPDATED,
            ticket_id=ticket.id,
            actor_id=actor_id,
            data={"changes": {"formOpen": {"from": False, "to": True}}},
        )
        await db.flush()
    return ticket
