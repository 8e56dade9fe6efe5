"""Ticket lists: filters, substring and full-text search, offset and keyset pages, totals.

Totals for the common filters (none, status, reporter, assignee, and each with a status) come
from `ticket_counts` (kept by triggers): a handful of index rows instead of a count over a
million. Only a search has to count its matches, through the trigram or full-text index.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.errors import ValidationFailed
from tekudasai.tickets.errors import InvalidCursor
from tekudasai.tickets.models import Ticket, TicketCount
from tekudasai.tickets.service import TicketRow, with_form

CURSOR_PREFIX = "t1:"
UNASSIGNED = "none"
# A search counts its matches up to this many: an exact count of a common word over a million
# summaries costs hundreds of milliseconds, the first thousand a few. Above it the page says
# total = SEARCH_COUNT_CAP with meta.pagination.totalCapped = true (keyset pages go further).
SEARCH_COUNT_CAP = 1000


@dataclass(frozen=True)
class TicketFilter:
    reporter_id: str | None = None
    status: str | None = None  # None or "all": every status
    search: str | None = None
    q: str | None = None
    assignee_id: str | None = None  # UNASSIGNED for tickets nobody works on


@dataclass
class TicketPage:
    rows: list[TicketRow]
    total: int
    next_cursor: str | None = None
    total_capped: bool = False


def escape_like(term: str) -> str:
    """A literal substring for LIKE: %, _ and the escape character match themselves."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def encode_cursor(ticket_id: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{ticket_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor(errors=[{"field": "cursor", "message": "Invalid cursor"}]) from exc
    number = raw.removeprefix(CURSOR_PREFIX)
    if not raw.startswith(CURSOR_PREFIX) or not number.isdigit() or int(number) > 2**31:
        raise InvalidCursor(errors=[{"field": "cursor", "message": "Invalid cursor"}])
    return int(number)


def _conditions(spec: TicketFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if spec.reporter_id is not None:
        conditions.append(Ticket.reporter_id == spec.reporter_id)
    if spec.status and spec.status != "all":
        conditions.append(Ticket.status == spec.status)
    if spec.assignee_id == UNASSIGNED:
        conditions.append(Ticket.assignee_id.is_(None))
    elif spec.assignee_id is not None:
        conditions.append(Ticket.assignee_id == spec.assignee_id)
    if spec.search:
        # ILIKE with a literal pattern: served by the trigram index ix_tickets_summary_trgm.
        conditions.append(Ticket.summary.ilike(f"%{escape_like(spec.search)}%", escape="\\"))
    if spec.q:
        conditions.append(Ticket.search_vector.op("@@")(_tsquery(spec.q)))
    return conditions


def _tsquery(q: str) -> Any:
    # The 'simple' configuration, as the triggers that build search_vector use.
    return func.websearch_to_tsquery(literal_column("'simple'::regconfig"), q)


def count_query(spec: TicketFilter) -> Any:
    """The cheapest statement that gives the total for this filter."""
    counter = _counter_for(spec)
    if counter is None:
        matches = (
            select(literal(1))
            .select_from(Ticket)
            .where(*_conditions(spec))
            .limit(SEARCH_COUNT_CAP + 1)
            .subquery()
        )
        return select(func.count()).select_from(matches)
    scope, key = counter
    query = select(func.coalesce(func.sum(TicketCount.n), 0)).where(
        TicketCount.scope == scope, TicketCount.key == key
    )
    if spec.status and spec.status != "all":
        query = query.where(TicketCount.status == spec.status)
    return query


def _counter_for(spec: TicketFilter) -> tuple[str, str] | None:
    if spec.search or spec.q or (spec.reporter_id and spec.assignee_id):
        return None
    if spec.reporter_id is not None:
        return ("reporter", spec.reporter_id)
    if spec.assignee_id is not None:
        return ("assignee", "" if spec.assignee_id == UNASSIGNED else spec.assignee_id)
    return ("all", "")


def list_query(spec: TicketFilter, *, page: int, limit: int, cursor: str | None = None) -> Any:
    """The page statement (limit + 1 rows) with the total as an uncorrelated subquery."""
    if cursor is not None and spec.q:
        raise ValidationFailed(
            "cursor: keyset pages follow ticket ids; use page with q (ranked results).",
            errors=[{"field": "cursor", "message": "Not available with q"}],
        )
    query = with_form().add_columns(count_query(spec).scalar_subquery().label("total"))
    query = query.where(*_conditions(spec))
    if cursor:
        query = query.where(Ticket.id < decode_cursor(cursor))
    if spec.q:
        rank = func.ts_rank(Ticket.search_vector, _tsquery(spec.q))
        query = query.order_by(rank.desc(), Ticket.id.desc())
    else:
        query = query.order_by(Ticket.id.desc())
    if cursor is None:
        query = query.offset((page - 1) * limit)
    # One row more than asked tells whether there is a next page.
    return query.limit(limit + 1)


async def list_tickets(
    db: AsyncSession,
    *,
    spec: TicketFilter,
    page: int,
    limit: int,
    cursor: str | None = None,
) -> TicketPage:
    """One page, newest first (or best match first for `q`), with the total: one round trip
    unless the page is empty."""
    result = (await db.execute(list_query(spec, page=page, limit=limit, cursor=cursor))).all()
    rows = [TicketRow(ticket=r[0], form=r[1], version=r[2]) for r in result[:limit]]
    if result:
        total = int(result[0].total)
    elif page == 1 and cursor is None:
        total = 0
    else:
        total = int(await db.scalar(count_query(spec)) or 0)
    next_cursor = None
    if len(result) > limit and not spec.q:
        next_cursor = encode_cursor(rows[-1].ticket.id)
    capped = total > SEARCH_COUNT_CAP
    return TicketPage(
        rows=rows,
        total=SEARCH_COUNT_CAP if capped else total,
        next_cursor=next_cursor,
        total_capped=capped,
    )
