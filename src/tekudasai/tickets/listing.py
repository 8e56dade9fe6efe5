"""Ticket lists: filters, substring and full-text search, offset and keyset pages, totals.

Totals for the common filters (none, status, reporter, assignee, and each with a status) come
from `ticket_counts` (kept by triggers): a handful of index rows instead of a count over a
million. Only a search has to count its matches, through the trigram or full-text index.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Text,
    bindparam,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.errors import ValidationFailed
from tekudasai.db.raw import RawStatement
from tekudasai.tickets import rendering
from tekudasai.tickets.errors import InvalidCursor
from tekudasai.tickets.models import Ticket, TicketCount
from tekudasai.tickets.service import TicketRow, with_form

CURSOR_PREFIX = "t1:"
UNASSIGNED = "none"
# A search counts its matches only as far as the pager shows: up to the end of the page this
# many pages ahead. An exact count of a common word over a million summaries costs hundreds of
# milliseconds, and each match counted costs about a microsecond more (a common word at page 1
# of 10: 100 matches, well under a millisecond). Above the cap the page says total = the cap
# with meta.pagination.totalCapped = true; moving on moves the cap.
SEARCH_PAGES_AHEAD = 10


def search_count_cap(*, page: int, limit: int) -> int:
    return (page - 1 + SEARCH_PAGES_AHEAD) * limit


@dataclass(frozen=True)
class TicketFilter:
    reporter_id: str | None = None
    status: str | None = None  # None or "all": every status
    search: str | None = None
    q: str | None = None
    assignee_id: str | None = None  # UNASSIGNED for tickets nobody works on


Item = TypeVar("Item")


@dataclass
class TicketPage(Generic[Item]):
    rows: list[Item]
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
    # isascii: str.isdigit() also accepts digits int() refuses, such as '²'.
    if (
        not raw.startswith(CURSOR_PREFIX)
        or not (number.isascii() and number.isdigit())
        or int(number) > 2**31
    ):
        raise InvalidCursor(errors=[{"field": "cursor", "message": "Invalid cursor"}])
    return int(number)


@dataclass(frozen=True)
class _Shape:
    """What a list statement looks like; the values travel as bind parameters, so one built
    (and compiled) statement per shape serves every request of that shape."""

    reporter: bool
    status: bool
    assignee: str | None  # None, "id" or UNASSIGNED
    search: bool
    q: bool
    keyset: bool
    counter: str | None  # the ticket_counts scope that gives the total, or None: count rows


def _shape(spec: TicketFilter, cursor: str | None) -> _Shape:
    counter = None
    if not (spec.search or spec.q or (spec.reporter_id and spec.assignee_id)):
        counter = "reporter" if spec.reporter_id else "assignee" if spec.assignee_id else "all"
    return _Shape(
        reporter=spec.reporter_id is not None,
        status=bool(spec.status and spec.status != "all"),
        assignee=None
        if spec.assignee_id is None
        else UNASSIGNED
        if spec.assignee_id == UNASSIGNED
        else "id",
        search=bool(spec.search),
        q=bool(spec.q),
        keyset=cursor is not None,
        counter=counter,
    )


def _params(
    spec: TicketFilter, shape: _Shape, *, page: int, limit: int, cursor: str | None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "limit": limit + 1,
        "cap": search_count_cap(page=page, limit=limit) + 1,
    }
    if shape.reporter:
        params["reporter_id"] = spec.reporter_id
    if shape.status:
        params["status"] = spec.status
    if shape.assignee == "id":
        params["assignee_id"] = spec.assignee_id
    if shape.search and spec.search:
        params["pattern"] = f"%{escape_like(spec.search)}%"
    if shape.q:
        params["q"] = spec.q
    if cursor:
        params["before"] = decode_cursor(cursor)
    elif cursor is not None:
        params["before"] = 2**31  # '' = the first keyset page
    else:
        params["offset"] = (page - 1) * limit
    if shape.counter == "reporter":
        params["count_key"] = spec.reporter_id
    elif shape.counter == "assignee":
        params["count_key"] = "" if spec.assignee_id == UNASSIGNED else spec.assignee_id
    elif shape.counter == "all":
        params["count_key"] = ""
    return params


def _conditions(shape: _Shape) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if shape.reporter:
        conditions.append(Ticket.reporter_id == bindparam("reporter_id"))
    if shape.status:
        conditions.append(Ticket.status == bindparam("status"))
    if shape.assignee == UNASSIGNED:
        conditions.append(Ticket.assignee_id.is_(None))
    elif shape.assignee:
        conditions.append(Ticket.assignee_id == bindparam("assignee_id"))
    if shape.search:
        # ILIKE with a literal pattern: served by the trigram index ix_tickets_summary_trgm.
        conditions.append(Ticket.summary.ilike(bindparam("pattern", type_=Text), escape="\\"))
    if shape.q:
        conditions.append(Ticket.search_vector.op("@@")(_tsquery()))
    return conditions


def _tsquery() -> Any:
    # The 'simple' configuration, as the triggers that build search_vector use.
    return func.websearch_to_tsquery(
        literal_column("'simple'::regconfig"), bindparam("q", type_=Text)
    )


@functools.lru_cache(maxsize=256)
def _count_statement(shape: _Shape) -> Any:
    if shape.counter is None:
        matches = (
            select(literal(1))
            .select_from(Ticket)
            .where(*_conditions(shape))
            .limit(bindparam("cap", type_=Integer))
            .subquery()
        )
        return select(func.count()).select_from(matches)
    query = select(func.coalesce(func.sum(TicketCount.n), 0)).where(
        TicketCount.scope == shape.counter, TicketCount.key == bindparam("count_key")
    )
    if shape.status:
        query = query.where(TicketCount.status == bindparam("status"))
    return query


@functools.lru_cache(maxsize=256)
def _list_statement(shape: _Shape, *, rendered: bool = False) -> Any:
    # The page is chosen on ticket ids alone and the columns (the JSON, the form) are built for
    # its rows only: rows an OFFSET skips have their select list computed all the same.
    rank = func.ts_rank(Ticket.search_vector, _tsquery()).label("rank")
    ids = select(Ticket.id, rank) if shape.q else select(Ticket.id)
    ids = ids.where(*_conditions(shape))
    if shape.keyset:
        ids = ids.where(Ticket.id < bindparam("before", type_=BigInteger))
    ids = ids.order_by(rank.desc(), Ticket.id.desc()) if shape.q else ids.order_by(Ticket.id.desc())
    if not shape.keyset:
        ids = ids.offset(bindparam("offset", type_=Integer))
    # One row more than asked tells whether there is a next page.
    page = ids.limit(bindparam("limit", type_=Integer)).subquery("page")
    total = _count_statement(shape).scalar_subquery().label("total")
    head = rendering.rendered_head() if rendered else with_form()
    query = head.add_columns(total).join(page, page.c.id == Ticket.id)
    if shape.q:
        return query.order_by(page.c.rank.desc(), Ticket.id.desc())
    return query.order_by(Ticket.id.desc())


def _check(spec: TicketFilter, cursor: str | None) -> None:
    if cursor is not None and spec.q:
        raise ValidationFailed(
            "cursor: keyset pages follow ticket ids; use page with q (ranked results).",
            errors=[{"field": "cursor", "message": "Not available with q"}],
        )


def count_query(spec: TicketFilter) -> Any:
    """The cheapest statement that gives the total for this filter (values bound)."""
    shape = _shape(spec, None)
    return _count_statement(shape).params(**_params(spec, shape, page=1, limit=1, cursor=None))


@functools.lru_cache(maxsize=256)
def _raw_list_statement(shape: _Shape) -> RawStatement:
    return RawStatement(_list_statement(shape, rendered=True))


def list_query(spec: TicketFilter, *, page: int, limit: int, cursor: str | None = None) -> Any:
    """The API's page statement (limit + 1 rows, total as an uncorrelated subquery), values
    bound."""
    _check(spec, cursor)
    shape = _shape(spec, cursor)
    params = _params(spec, shape, page=page, limit=limit, cursor=cursor)
    return _list_statement(shape, rendered=True).params(**params)


async def list_tickets(
    db: AsyncSession,
    *,
    spec: TicketFilter,
    page: int,
    limit: int,
    cursor: str | None = None,
) -> TicketPage[TicketRow]:
    """One page of tickets with their form versions (ORM rows, for the web pages)."""
    result = await _fetch(db, spec=spec, page=page, limit=limit, cursor=cursor, rendered=False)
    rows = [TicketRow(ticket=r[0], form=r[1], version=r[2]) for r in result.rows]
    return TicketPage(rows, result.total, result.next_cursor, result.total_capped)


async def list_rendered(
    db: AsyncSession,
    *,
    spec: TicketFilter,
    page: int,
    limit: int,
    cursor: str | None = None,
) -> TicketPage[str]:
    """One page of tickets as JSON text with their forms (the API's `data` items)."""
    result = await _fetch(db, spec=spec, page=page, limit=limit, cursor=cursor, rendered=True)
    items = await rendering.with_forms(db, result.rows)
    return TicketPage(items, result.total, result.next_cursor, result.total_capped)


async def _fetch(
    db: AsyncSession,
    *,
    spec: TicketFilter,
    page: int,
    limit: int,
    cursor: str | None,
    rendered: bool,
) -> TicketPage[Any]:
    """One page, newest first (or best match first for `q`), with the total: one round trip
    unless the page is empty."""
    _check(spec, cursor)
    shape = _shape(spec, cursor)
    params = _params(spec, shape, page=page, limit=limit, cursor=cursor)
    result: Sequence[Any]
    if rendered:
        result = await _raw_list_statement(shape).fetch(db, **params)
    else:
        result = (await db.execute(_list_statement(shape), params)).all()
    rows = list(result[:limit])
    if result:
        first: Any = result[0]
        total = int(first["total"] if rendered else first.total)
    elif page == 1 and cursor is None:
        total = 0
    else:
        count_shape = _shape(spec, None)
        total = int(await db.scalar(_count_statement(count_shape), params) or 0)
    next_cursor = None
    if len(result) > limit and not spec.q:
        last = rows[-1]
        next_cursor = encode_cursor(last["id"] if rendered else last[0].id)
    cap = search_count_cap(page=page, limit=limit)
    capped = total > cap
    return TicketPage(
        rows=rows,
        total=cap if capped else total,
        next_cursor=next_cursor,
        total_capped=capped,
    )
