"""The SLA clock: a reactor (`tasks.REACTORS`) that keeps a ticket's SLA columns, in the
transaction of each change.

- ticket.created: the first policy by position (then creation time) whose conditions match
  (`priority`, `formId`, `teamId`; a missing key matches everything) applies; none → no SLA.
  Both targets are counted in business minutes of the policy's calendar from the creation.
- ticket.status_changed: to `pending` opens a paused interval; leaving it closes the interval and
  recomputes the targets (`businesstime.due_at` with every paused interval); `resolved`/`closed`
  stop the clocks (state `met` unless a target was breached); reopening restarts the resolution
  clock (new start, its warning/breach entries forgotten, so they may fire again).
- comment.created: the first public reply of an agent or admin meets the first-response target.
- ticket.updated with a new priority or team: the policy is matched again; another policy
  recomputes both targets from the original starts.

Per target the state lives in `sla_fired`: `<target>.warning` / `<target>.breached` once fired,
and `firstResponse.answered` once the first response was given (after a breach too: the
breach stays on record, the queue stops counting down to it). `sla_state` and `sla_due_at` (the
nearest target still outstanding; null while paused or when none is) follow from them and the
status (`_summary`).

Warnings (80 % of a target's business time used) and breaches are fired by `sla.check` jobs
(sla/jobs.py), one scheduled for the next such moment whenever the targets change.

Cost. Ticket creation is the hottest write, so the clock adds one round trip to it, with a
policy or without. Policies and their calendars are cached per process, tagged with a
*fingerprint* of both tables (md5 over every row's id and updated_at: any insert, update or
delete changes it, and the services need not remember to bump anything). Every write the clock
makes is guarded by that fingerprint in the same statement (`UPDATE … WHERE fingerprint = $fp`,
which also inserts the timer job): when a policy or calendar changed meanwhile, nothing is
written, the cache is reloaded and the write is made again. Without a matching policy the clock
has nothing to write and asks only for the fingerprint (one short statement). So a cached
policy is never applied once its change has committed, without a NOTIFY listener or a TTL, and
the check costs what a primary-key read costs. Only one-row tables are aggregated: policies and
calendars are a few dozen rows.

Measured in process (bench/automations_bench.py, `policy` against `none`; busy machine): the
same round trips per creation with a policy as without (the guarded UPDATE there, the
fingerprint read here), 1.09 to 1.18 times the time of creation without one. What remains is
the database's work for the UPDATE: sla_due_at and sla_policy_id are indexed, so it is not a
HOT update and the new row version goes into every index of tickets (the GIN ones too), and
the ticket_counts statement trigger runs. Setting the columns in the creation INSERT itself
(the clock computing them before it) would save that; it needs a hook in the ticket service.

The new ticket's fields come from the object the ticket service filed (it joins the session as
the stored row), not from the database, and what the clock writes is mirrored onto the
session's copy of the ticket, so callers see the row as it now is.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, Text, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import attributes
from sqlalchemy.orm.util import identity_key

from tekudasai.accounts.dependencies import STAFF_ROLES
from tekudasai.db.raw import RawStatement
from tekudasai.jobs.queue import CHANNEL as JOBS_CHANNEL
from tekudasai.sla.businesstime import (
    Calendar,
    CalendarError,
    Interval,
    _working_time,
    due_at,
    working_minutes,
)
from tekudasai.sla.calendars import as_calendar
from tekudasai.sla.models import BusinessCalendar
from tekudasai.tickets import events, service
from tekudasai.tickets.events import EventType
from tekudasai.tickets.models import Ticket, TicketStatus

CHECK = "sla.check"
FIRST_RESPONSE = "firstResponse"
RESOLUTION = "resolution"
TARGETS = (FIRST_RESPONSE, RESOLUTION)
WARNING_SHARE = 0.8
STOPPED = frozenset({TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value})
PENDING = TicketStatus.PENDING.value
FR_MET = f"{FIRST_RESPONSE}.answered"

# -- policies, cached per process -------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    id: str
    priority: frozenset[str] | None
    form_ids: frozenset[str] | None
    team_ids: frozenset[str] | None
    calendar: Calendar
    first_response_minutes: int
    resolution_minutes: int

    def matches(self, *, priority: str, form_id: str, team_id: str | None) -> bool:
        return (
            (self.priority is None or priority in self.priority)
            and (self.form_ids is None or form_id in self.form_ids)
            and (self.team_ids is None or team_id in self.team_ids)
        )

    def minutes(self, target: str) -> int:
        return self.first_response_minutes if target == FIRST_RESPONSE else self.resolution_minutes


@dataclass(frozen=True)
class Policies:
    fingerprint: str
    ordered: tuple[Policy, ...]

    def match(self, *, priority: str, form_id: str, team_id: str | None) -> Policy | None:
        return next(
            (
                p
                for p in self.ordered
                if p.matches(priority=priority, form_id=form_id, team_id=team_id)
            ),
            None,
        )

    def get(self, policy_id: str | None) -> Policy | None:
        return next((p for p in self.ordered if p.id == policy_id), None)


_FINGERPRINT_SQL = (
    "md5(coalesce((SELECT string_agg(id || ':' || extract(epoch FROM updated_at)::text, ','"
    " ORDER BY id) FROM sla_policies), '') || '|' || coalesce((SELECT string_agg(id || ':'"
    " || extract(epoch FROM updated_at)::text, ',' ORDER BY id) FROM business_calendars), ''))"
)
_cache: Policies | None = None
# The name under which a new ticket's INSERT reads the fingerprint (tasks.install_reactors).
FINGERPRINT_PROBE = "sla_fingerprint"
CREATION_PROBES = {FINGERPRINT_PROBE: _FINGERPRINT_SQL}


def forget_policies() -> None:
    """Drop this process's cache (tests; the fingerprint makes it unnecessary otherwise)."""
    global _cache
    _cache = None


@functools.cache
def _fingerprint_statement() -> RawStatement:
    return RawStatement(text(f"SELECT {_FINGERPRINT_SQL} AS fp"))


async def _load(db: AsyncSession) -> Policies:
    """Read the fingerprint first, then the rows: a change in between leaves a cache newer than
    its fingerprint, which the next guarded write finds out (never the other way round)."""
    global _cache
    row = await _fingerprint_statement().fetchrow(db)
    assert row is not None
    rows = (
        await db.execute(
            text(
                "SELECT p.id, p.conditions, p.first_response_minutes, p.resolution_minutes,"
                " p.calendar_id FROM sla_policies p ORDER BY p.position, p.created_at, p.id"
            )
        )
    ).all()
    calendars: dict[str, Calendar] = {}
    if rows:
        ids = sorted({r.calendar_id for r in rows})
        for cal in (
            await db.execute(
                text(
                    "SELECT id, timezone, hours, holidays, holiday_country FROM business_calendars"
                    " WHERE id = ANY(:ids)"
                ),
                {"ids": ids},
            )
        ).all():
            calendars[cal.id] = as_calendar(
                BusinessCalendar(
                    timezone=cal.timezone,
                    hours=cal.hours,
                    holidays=cal.holidays or [],
                    holiday_country=cal.holiday_country,
                )
            )

    def wanted(conditions: dict[str, Any], key: str) -> frozenset[str] | None:
        values = conditions.get(key)
        return frozenset(values) if values else None

    _cache = Policies(
        row["fp"],
        tuple(
            Policy(
                id=r.id,
                priority=wanted(r.conditions or {}, "priority"),
                form_ids=wanted(r.conditions or {}, "formId"),
                team_ids=wanted(r.conditions or {}, "teamId"),
                calendar=calendars[r.calendar_id],
                first_response_minutes=r.first_response_minutes,
                resolution_minutes=r.resolution_minutes,
            )
            for r in rows
            if r.calendar_id in calendars
        ),
    )
    return _cache


async def policies(db: AsyncSession) -> Policies:
    return _cache if _cache is not None else await _load(db)


async def fingerprint_holds(db: AsyncSession, cached: Policies) -> bool:
    row = await _fingerprint_statement().fetchrow(db)
    return row is not None and row["fp"] == cached.fingerprint


# -- the clock's state ------------------------------------------------------------------------


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


@dataclass
class Clock:
    """A ticket's SLA columns, and what they are computed from."""

    created_at: datetime
    status: str
    policy_id: str | None
    started_at: datetime | None
    paused: list[list[str | None]]
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    fired: list[str]
    state: str | None = None
    due_at: datetime | None = None
    # Warning moments known from `recompute` (else derived from the stored due times).
    warnings: dict[str, datetime] = field(default_factory=dict)

    @classmethod
    def of(cls, ticket: Any) -> Clock:
        return cls(
            created_at=ticket.created_at,
            status=ticket.status,
            policy_id=ticket.sla_policy_id,
            started_at=ticket.sla_started_at,
            paused=[list(p) for p in (ticket.sla_paused or [])],
            first_response_due_at=ticket.sla_first_response_due_at,
            resolution_due_at=ticket.sla_resolution_due_at,
            fired=list(ticket.sla_fired or []),
            state=ticket.sla_state,
            due_at=ticket.sla_due_at,
        )

    def columns(self) -> dict[str, Any]:
        return {
            "sla_policy_id": self.policy_id,
            "sla_state": self.state,
            "sla_started_at": self.started_at,
            "sla_paused": self.paused,
            "sla_first_response_due_at": self.first_response_due_at,
            "sla_resolution_due_at": self.resolution_due_at,
            "sla_due_at": self.due_at,
            "sla_fired": self.fired,
        }

    # -- per target

    def start(self, target: str) -> datetime:
        if target == FIRST_RESPONSE:
            return self.created_at
        return self.started_at or self.created_at

    def due(self, target: str) -> datetime | None:
        return self.first_response_due_at if target == FIRST_RESPONSE else self.resolution_due_at

    def outstanding(self, target: str) -> bool:
        """Still to be met: not stopped by resolving, not met by a reply."""
        if self.policy_id is None or self.status in STOPPED or self.due(target) is None:
            return False
        return not (target == FIRST_RESPONSE and FR_MET in self.fired)

    @property
    def is_paused(self) -> bool:
        return bool(self.paused) and self.paused[-1][1] is None

    def intervals(self) -> list[tuple[datetime, datetime]]:
        """The closed paused intervals (an open one is never counted: nothing is computed
        while paused)."""
        return [
            (datetime.fromisoformat(a), datetime.fromisoformat(b))
            for a, b in self.paused
            if a is not None and b is not None
        ]

    # -- changes

    def summarise(self) -> None:
        """`state` and `due_at` from the targets, `fired` and the status."""
        if self.policy_id is None:
            self.state, self.due_at = None, None
            return
        outstanding = [t for t in TARGETS if self.outstanding(t)]
        if self.is_paused:
            self.state, self.due_at = "paused", None
            return
        dues = [d for t in outstanding if (d := self.due(t)) is not None]
        self.due_at = min(dues) if dues else None
        if any(f.endswith(".breached") for f in self.fired):
            self.state = "breached"
        elif not outstanding:
            self.state = "met"
        elif any(f"{t}.warning" in self.fired for t in outstanding):
            self.state = "warning"
        else:
            self.state = "running"

    def recompute(self, policy: Policy, targets: tuple[str, ...] = TARGETS) -> None:
        """New due times from the policy; the warning moments come with them (one walk through
        the calendar per target: creation is the hot path)."""
        paused = self.intervals()
        for target in targets:
            minutes = policy.minutes(target)
            warning, due = _reach(
                self.start(target), (minutes * WARNING_SHARE, minutes), policy.calendar, paused
            )
            self.warnings[target] = warning
            if target == FIRST_RESPONSE:
                self.first_response_due_at = due
            else:
                self.resolution_due_at = due

    def pause(self, now: datetime) -> None:
        if not self.is_paused:
            self.paused.append([iso(now), None])

    def resume(self, now: datetime) -> None:
        if self.is_paused:
            self.paused[-1][1] = iso(max(now, datetime.fromisoformat(str(self.paused[-1][0]))))

    def clear(self) -> None:
        self.policy_id = self.started_at = None
        self.first_response_due_at = self.resolution_due_at = None
        self.paused, self.fired = [], []

    # -- moments

    def moments(self, policy: Policy) -> list[tuple[datetime, str, str]]:
        """(when, target, "warning"|"breached") of every event still to fire, soonest first;
        none while paused."""
        if self.is_paused:
            return []
        paused = self.intervals()
        found = []
        for target in TARGETS:
            due = self.due(target)
            if due is None or not self.outstanding(target):
                continue
            if f"{target}.warning" not in self.fired and f"{target}.breached" not in self.fired:
                # 80 % of the business time this target was given (as stored: a policy edited
                # since does not move a running target).
                when = self.warnings.get(target)
                if when is None:
                    start = self.start(target)
                    total = working_minutes(start, due, policy.calendar, paused)
                    when = (
                        due_at(start, total * WARNING_SHARE, policy.calendar, paused)
                        if total > 0
                        else due
                    )
                found.append((min(when, due), target, "warning"))
            if f"{target}.breached" not in self.fired:
                found.append((due, target, "breached"))
        # At the same instant the warning comes first.
        return sorted(found, key=lambda m: (m[0], m[2] == "breached", m[1]))


def _reach(
    start: datetime, marks: tuple[float, float], calendar: Calendar, paused: list[Interval]
) -> tuple[datetime, datetime]:
    """`due_at` for two minute marks (ascending) in one walk: the same instants."""
    found: list[datetime] = []
    used = timedelta()
    wanted = [timedelta(minutes=m) for m in marks]
    for low, high in _working_time(calendar, start, paused):
        while wanted and used + (high - low) >= wanted[0]:
            found.append(low + (wanted.pop(0) - used))
        if not wanted:
            return found[0], found[1]
        used += high - low
    raise CalendarError("the calendar has no working time within three years")


# -- writing ----------------------------------------------------------------------------------


@functools.cache
def _update_statement() -> RawStatement:
    """The SLA columns and the next timer job (with a NOTIFY only when it is due already), if
    the policies' fingerprint is still `fp`; `ok` says whether it was."""
    moment = DateTime(timezone=True)
    sql = text(
        f"""
        WITH guard AS (SELECT {_FINGERPRINT_SQL} = :fp AS ok),
        changed AS (
            UPDATE tickets SET
                sla_policy_id = :policy_id, sla_state = :state, sla_started_at = :started_at,
                sla_paused = CAST(:paused AS jsonb),
                sla_first_response_due_at = :first_response_due_at,
                sla_resolution_due_at = :resolution_due_at, sla_due_at = :due_at,
                sla_fired = ARRAY(SELECT jsonb_array_elements_text(CAST(:fired AS jsonb)))
            WHERE id = :ticket_id AND (SELECT ok FROM guard)
            RETURNING id
        ),
        job AS (
            INSERT INTO jobs (name, args, run_after, max_attempts)
            SELECT '{CHECK}', jsonb_build_object('ticketId', changed.id), :run_after, 5
            FROM changed WHERE CAST(:run_after AS timestamptz) IS NOT NULL
            RETURNING run_after
        )
        SELECT (SELECT ok FROM guard) AS ok,
               (SELECT count(CASE WHEN run_after <= now() THEN pg_notify('{JOBS_CHANNEL}', '')
                             END) FROM job) AS woke
        """
    ).bindparams(
        bindparam("fp", type_=Text),
        bindparam("ticket_id", type_=Integer),
        bindparam("policy_id", type_=Text),
        bindparam("state", type_=Text),
        bindparam("started_at", type_=moment),
        bindparam("paused", type_=Text),
        bindparam("first_response_due_at", type_=moment),
        bindparam("resolution_due_at", type_=moment),
        bindparam("due_at", type_=moment),
        bindparam("fired", type_=Text),
        bindparam("run_after", type_=moment),
    )
    return RawStatement(sql)


async def _write(
    db: AsyncSession, ticket_id: int, clock: Clock, cached: Policies, run_after: datetime | None
) -> bool:
    """The SLA columns and the next timer job in one statement, guarded by the policies'
    fingerprint; False (nothing written) when the cache is stale."""
    row = await _update_statement().fetchrow(
        db,
        fp=cached.fingerprint,
        ticket_id=ticket_id,
        policy_id=clock.policy_id,
        state=clock.state,
        started_at=clock.started_at,
        paused=json.dumps(clock.paused),
        first_response_due_at=clock.first_response_due_at,
        resolution_due_at=clock.resolution_due_at,
        due_at=clock.due_at,
        fired=json.dumps(clock.fired),
        run_after=run_after,
    )
    if row is None or not row["ok"]:
        return False
    _mirror(db, ticket_id, clock)
    return True


def _mirror(db: AsyncSession, ticket_id: int, clock: Clock) -> None:
    """What was written, onto the new ticket's object and the session's copy: as loaded
    values, so the ORM neither writes them again nor loses them to a reload."""
    new = db.info.get(service.NEW_TICKET)
    if new is not None and new.id == ticket_id:
        for key, value in clock.columns().items():
            setattr(new, key, value)
    loaded = db.identity_map.get(identity_key(Ticket, ticket_id))
    if loaded is not None:
        for key, value in clock.columns().items():
            attributes.set_committed_value(loaded, key, value)


async def _save(
    db: AsyncSession, ticket_id: int, clock: Clock, cached: Policies, policy: Policy | None
) -> bool:
    clock.summarise()
    moments = clock.moments(policy) if policy is not None else []
    return await _write(db, ticket_id, clock, cached, moments[0][0] if moments else None)


# -- reacting ---------------------------------------------------------------------------------


async def react(db: AsyncSession, change: events.Change) -> None:
    """The reactor: each change the clock cares about, the others at once."""
    if change.type is EventType.TICKET_CREATED:
        await _created(db, change.ticket_id, change.probes.get(FINGERPRINT_PROBE))
    elif change.type is EventType.STATUS_CHANGED:
        status = (change.data.get("changes") or {}).get("status") or {}
        await _status_changed(db, change.ticket_id, status.get("from"), status.get("to"))
    elif change.type is EventType.COMMENT_CREATED:
        if not change.internal and not change.data.get("byReporter") and change.actor_id:
            await _replied(db, change.ticket_id, change.actor_id)
    elif change.type is EventType.TICKET_UPDATED:
        changes = change.data.get("changes") or {}
        if "priority" in changes or "teamId" in changes:
            await _rematch(db, change.ticket_id)


async def _ticket(db: AsyncSession, ticket_id: int) -> Ticket | None:
    """The ticket as the change left it: the session's copy (locked by the service, with the
    change's values not yet flushed) or, failing that, the row locked now."""
    loaded = db.identity_map.get(identity_key(Ticket, ticket_id))
    if isinstance(loaded, Ticket):
        return loaded
    return await db.get(Ticket, ticket_id, with_for_update=True)


def _now() -> datetime:
    return datetime.now(UTC)


async def _created(db: AsyncSession, ticket_id: int, probed: str | None = None) -> None:
    """`probed`: the policies' fingerprint as the ticket's INSERT read it (a creation probe),
    which spares the check's own round trip when no policy applies."""
    # The filed ticket is in the session already (tickets/service.py::_created): no read.
    ticket: Any = await _ticket(db, ticket_id)
    if ticket is None or ticket.sla_policy_id is not None:
        return  # the INSERT wrote the clock already (`prefill`)

    async def holds(cached: Policies) -> bool:
        nonlocal probed
        if probed is not None:
            seen, probed = probed, None  # good for one check: a retry reads it afresh
            return seen == cached.fingerprint
        return await fingerprint_holds(db, cached)

    for _attempt in range(3):
        cached = await policies(db)
        policy = cached.match(
            priority=ticket.priority, form_id=ticket.form_id, team_id=ticket.team_id
        )
        if policy is None:
            if await holds(cached):
                return
        else:
            clock = Clock(
                created_at=ticket.created_at,
                status=ticket.status,
                policy_id=policy.id,
                started_at=ticket.created_at,
                paused=[],
                first_response_due_at=None,
                resolution_due_at=None,
                fired=[],
            )
            if not _computed(clock, policy):
                # No due time from a cached calendar: fine if the cache is current, else
                # the policies changed under it (read them again).
                if await holds(cached):
                    return
            elif await _save(db, ticket_id, clock, cached, policy):
                return
        forget_policies()


# The columns a new ticket's INSERT can carry (the rest start empty).
PREFILLED = (
    "sla_policy_id",
    "sla_state",
    "sla_started_at",
    "sla_first_response_due_at",
    "sla_resolution_due_at",
    "sla_due_at",
)


def prefill(*, priority: str, form_id: str) -> events.Prefill | None:
    """The clock of a ticket about to be filed, from this process's cached policies, for its
    INSERT to write (events.Prefill): an UPDATE of the new row touched every index of
    `tickets` again and cost creation 40-65 % of its throughput (bench/automations_bench.py
    --http). None without a cache, a matching policy or a due time: `_created` then works
    as before. A new ticket has no team yet."""
    cached = _cache
    if cached is None:
        return None
    policy = cached.match(priority=priority, form_id=form_id, team_id=None)
    if policy is None:
        return None
    now = _now()
    clock = Clock(
        created_at=now,
        status="open",
        policy_id=policy.id,
        started_at=now,
        paused=[],
        first_response_due_at=None,
        resolution_due_at=None,
        fired=[],
    )
    if not _computed(clock, policy):
        return None
    clock.summarise()
    moments = clock.moments(policy)
    columns = clock.columns()
    return events.Prefill(
        probe=FINGERPRINT_PROBE,
        expect=cached.fingerprint,
        created_at=now,
        columns={key: columns[key] for key in PREFILLED},
        job=(CHECK, moments[0][0]) if moments else None,
    )


def _computed(clock: Clock, policy: Policy) -> bool:
    """Recompute both targets; False when the calendar has no working time at all (the
    ticket then goes without an SLA rather than failing)."""
    try:
        clock.recompute(policy)
    except CalendarError:
        return False
    return True


@dataclass(frozen=True)
class Skip:
    """Nothing to write; `verify`: only if the cached policies are current (a decision made
    from them, such as "no policy matches")."""

    verify: bool = False


# What a change does to a clock: the policy to time it by, None when the clock was cleared
# (written without a timer), or Skip.
Outcome = Policy | Skip | None
NOTHING = Skip()
STALE = Skip(verify=True)


async def _change(
    db: AsyncSession, ticket_id: int, apply: Callable[[Clock, Policies], Outcome]
) -> None:
    """Apply a change to the ticket's clock and save it, again with fresh policies when they
    changed meanwhile."""
    ticket = await _ticket(db, ticket_id)
    if ticket is None:
        return
    for _attempt in range(3):
        cached = await policies(db)
        clock = Clock.of(ticket)
        before = clock.columns()
        try:
            outcome = apply(clock, cached)
        except CalendarError:
            return  # a calendar without working time: the targets stay as they were
        if isinstance(outcome, Skip):
            if not outcome.verify or await fingerprint_holds(db, cached):
                return
        else:
            clock.summarise()
            if clock.columns() == before:
                return
            if await _save(db, ticket_id, clock, cached, outcome):
                return
        forget_policies()


def _policy_of(clock: Clock, cached: Policies) -> Policy | Skip:
    if clock.policy_id is None:
        return NOTHING
    # A policy the cache does not know was created after it was loaded.
    return cached.get(clock.policy_id) or STALE


async def _status_changed(
    db: AsyncSession, ticket_id: int, old: str | None, new: str | None
) -> None:
    if old is None or new is None:
        return
    now = _now()

    def apply(clock: Clock, cached: Policies) -> Outcome:
        policy = _policy_of(clock, cached)
        if isinstance(policy, Skip):
            return policy
        clock.status = new
        if old in STOPPED and new not in STOPPED:
            # Reopened: the resolution clock starts again; its events may fire again. Paused
            # time before the new start no longer counts, unless the first response (counted
            # from the creation) is still to come.
            clock.started_at = now
            clock.fired = [f for f in clock.fired if not f.startswith(f"{RESOLUTION}.")]
            if not clock.outstanding(FIRST_RESPONSE):
                clock.paused = []
            clock.resume(now)
            if new == PENDING:
                clock.pause(now)
            clock.recompute(policy, (RESOLUTION,))
            return policy
        if new == PENDING:
            clock.pause(now)
            return policy
        if old == PENDING:
            clock.resume(now)
            clock.recompute(policy)
        return policy

    await _change(db, ticket_id, apply)


async def _replied(db: AsyncSession, ticket_id: int, actor_id: str) -> None:
    ticket = await _ticket(db, ticket_id)
    if ticket is None or ticket.sla_policy_id is None:
        return
    if FR_MET in (ticket.sla_fired or []):
        return
    role = await db.scalar(text("SELECT role FROM users WHERE id = :id"), {"id": actor_id})
    if role not in STAFF_ROLES:
        return

    def apply(clock: Clock, cached: Policies) -> Outcome:
        policy = _policy_of(clock, cached)
        if not isinstance(policy, Skip):
            clock.fired.append(FR_MET)
        return policy

    await _change(db, ticket_id, apply)


async def _rematch(db: AsyncSession, ticket_id: int) -> None:
    now = _now()
    ticket = await _ticket(db, ticket_id)
    if ticket is None:
        return
    # The session's copy carries the new priority and team (set by the service, not flushed).
    priority, form_id, team_id = ticket.priority, ticket.form_id, ticket.team_id

    def apply(clock: Clock, cached: Policies) -> Outcome:
        policy = cached.match(priority=priority, form_id=form_id, team_id=team_id)
        if policy is None and clock.policy_id is None:
            return STALE  # none matches, as long as the cache is current
        if policy is not None and policy.id == clock.policy_id:
            return STALE
        if policy is None:
            clock.clear()
            return None
        first = clock.policy_id is None
        clock.policy_id = policy.id
        if first:
            clock.started_at = clock.created_at
            clock.paused, clock.fired = [], []
            if clock.status == PENDING:
                clock.pause(now)
        else:
            # New targets: their warnings and breaches are new too.
            clock.fired = [f for f in clock.fired if f == FR_MET]
        clock.recompute(policy)
        return policy

    await _change(db, ticket_id, apply)
