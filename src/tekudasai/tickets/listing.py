"""Ticket lists: filters, substring and full-text search, offset and keyset pages, totals.

Totals for the common filters (none, status, reporter, assignee, and each with a status) come
from `ticket_counts` (kept by triggers): a handful of index rows instead of a count over a
million. Only a search has to count its matches, through the trigram or full-text index.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.errors import ValidationFailed
from tekudasai.tickets.errors import InvalidCursor
from tekudasai.tickets.models import Ticket, TicketCount
from tekudasai.tickets.service import TicketRow, with_form

CURSOR_PREFIX = "t1:"
UNASSIGNED = "none"


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
    extra: dict[str, Any] = field(default_factory=dict)


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
    return func.websearch_to_tsquery("simple", q)


def count_query(spec: TicketFilter) -> Any:
    """The cheapest statement that gives the total for this filter."""
    counter = _counter_for(spec)
    if counter is None:
        return select(func.count()).select_from(Ticket).where(*_conditions(spec))
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


async def list_tickets(
    db: AsyncSession,
    *,
    spec: TicketFilter,
    page: int,
    limit: int,
    cursor: str | None = None,
) -> TicketPage:
    """One page, newest first (or best match first for `q`), with the total; one round trip
    when the page is not empty (the total rides along as an uncorrelated subquery)."""
    if cursor is not None and spec.q:
        raise ValidationFailed(
            "cursor: keyset pages follow ticket ids; use page with q (ranked results).",
            errors=[{"field": "cursor", "message": "Not available with q"}],
        )
    total_query = count_query(spec)
    query = with_form().add_columns(total_query.scalar_subquery().label("total"))
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
    result = (await db.execute(query.limit(limit + 1))).all()
    rows = [TicketRow(ticket=r[0], form=r[1], version=r[2]) for r in result[:limit]]
    if result:
        total = int(result[0].total)
    elif page == 1 and cursor is None:
        total = 0
    else:
        total = int(await db.scalar(total_query) or 0)
    next_cursor = None
    if len(result) > limit and not spec.q:
        next_cursor = encode_cursor(rows[-1].ticket.id)
    return TicketPage(rows=rows, total=total, next_cursor=next_cursor)
