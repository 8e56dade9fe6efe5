"""Ticket lists: filters, substring and full-text search, offset and keyset pages, totals.

Totals for the common filters (none, status, reporter, assignee, and each with a status) come
from `ticket_counts` (kept by triggers): a handful of index rows instead of a count over a
million. Only a search has to count its matches, through the trigram or full-text index.

Sorts other than newest first (`sort=`) read the list as segments, each from its own index:
due time (tickets with a due time by (sla_due_at, id) on the partial index, then the others
by id), priority (one (priority, id) run per priority, urgent first). Their cursors carry the
segment and the sort key, so a deep page starts inside its segment instead of counting rows.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    Text,
    any_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.joined import JoinedRead, joined_read
from tekudasai.core.errors import ValidationFailed
from tekudasai.db.raw import RawStatement
from tekudasai.tickets import rendering
from tekudasai.tickets.errors import InvalidCursor
from tekudasai.tickets.models import Ticket, TicketCount
from tekudasai.tickets.service import TicketRow, with_form

if TYPE_CHECKING:
    from tekudasai.accounts.dependencies import Caller

CURSOR_PREFIX = "t1:"
# Cursors of the other sorts: t2:<sort>:<segment>:<key or empty>:<id>.
SORT_CURSOR_PREFIX = "t2:"
UNASSIGNED = "none"
NO_TEAM = "none"
DEFAULT_SORT = "-createdAt"
SORTS = ("createdAt", "-createdAt", "updatedAt", "-updatedAt", "dueAt", "priority")
PRIORITY_ORDER = ("urgent", "high", "normal", "low")
# A search counts its matches only as far as the pager shows: up to the end of the page this
# many pages ahead. An exact count of a common word over a million summaries costs hundreds of
# milliseconds, and each match counted costs about a microsecond more (a common word at page 1
# of 10: 100 matches, well under a millisecond). Above the cap the page says total = the cap
# with meta.pagination.totalCapped = true; moving on moves the cap.
SEARCH_PAGES_AHEAD = 10  # at least 1: a search's page is read from its counted matches


def search_count_cap(*, page: int, limit: int) -> int:
    return (page - 1 + SEARCH_PAGES_AHEAD) * limit


@dataclass(frozen=True)
class TicketFilter:
    reporter_id: str | None = None
    status: str | None = None  # None or "all": every status
    search: str | None = None
    q: str | None = None
    assignee_id: str | None = None  # UNASSIGNED for tickets nobody works on
    priority: str | None = None
    team_id: str | None = None  # NO_TEAM for tickets of no team
    tag: str | None = None  # normalised (tickets.service.normal_tag)
    sort: str | None = None  # one of SORTS; None: newest first (best match first for q)


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
class SortCursor:
    """Where a page of a sorted list ends: the segment (sorts like priority read their
    segments one after another), the sort key within it (a time, or None) and the id."""

    segment: int
    key: datetime | None
    id: int


def encode_sort_cursor(sort: str, cursor: SortCursor) -> str:
    key = cursor.key.isoformat() if cursor.key is not None else ""
    raw = f"{SORT_CURSOR_PREFIX}{sort}:{cursor.segment}:{key}:{cursor.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_sort_cursor(cursor: str, sort: str) -> SortCursor:
    bad = InvalidCursor(errors=[{"field": "cursor", "message": "Invalid cursor"}])
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise bad from exc
    prefix = f"{SORT_CURSOR_PREFIX}{sort}:"
    if not raw.startswith(prefix):
        raise bad  # another sort's cursor (or none at all)
    # The key (an ISO time) holds colons itself: the segment is first, the id last.
    segment, _, rest = raw.removeprefix(prefix).partition(":")
    key, _, number = rest.rpartition(":")
    segments = len(_segments(sort))
    if not (segment.isascii() and segment.isdigit() and int(segment) < segments):
        raise bad
    if not (number.isascii() and number.isdigit() and int(number) <= 2**31):
        raise bad
    moment = None
    if key:
        try:
            moment = datetime.fromisoformat(key)
        except ValueError as exc:
            raise bad from exc
        if moment.tzinfo is None:
            raise bad
    if (moment is None) != (_segments(sort)[int(segment)].key is None):
        raise bad
    return SortCursor(int(segment), moment, int(number))


@dataclass(frozen=True)
class _Segment:
    """One run of a sorted list: its rows (`where`), ordered by `key` then id, in the sort's
    direction. Each run is read on its own index (a due time's partial index, the
    (priority, id) index …) and the runs follow each other."""

    where: Any
    key: Any  # a column, or None: by id alone


@functools.cache
def _segments(sort: str) -> tuple[_Segment, ...]:
    if sort == "dueAt":
        # Tickets with a due time first, soonest first (ix_tickets_sla_due_at_id), then the
        # rest oldest first.
        return (
            _Segment(Ticket.sla_due_at.is_not(None), Ticket.sla_due_at),
            _Segment(Ticket.sla_due_at.is_(None), None),
        )
    if sort == "priority":
        return tuple(
            _Segment(Ticket.priority == literal_column(f"'{p}'"), None) for p in PRIORITY_ORDER
        )
    if sort in ("updatedAt", "-updatedAt"):
        return (_Segment(None, Ticket.updated_at),)
    return (_Segment(None, None),)


def _descending(sort: str) -> bool:
    return sort.startswith("-") or sort == "priority"


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
    priority: bool = False
    team: str | None = None  # None, "id" or NO_TEAM
    tag: bool = False
    sort: str = DEFAULT_SORT  # the sort of an explicit `sort=`, DEFAULT_SORT for the default
    ranked: bool = False  # q without sort: best match first
    keyset_segment: int = 0  # the segment a sort cursor points into
    capped: bool = False  # a search: its total is counted only as far as the pager reaches
    # The page size, written into the statement when its best plan does not depend on the
    # values (`_plan_fits_every_value`) and the page starts at the top: no OFFSET. None: the
    # LIMIT and OFFSET are bound values.
    page_size: int | None = None


def _plan_fits_every_value(shape: _Shape) -> bool:
    """Whether one plan serves every value of this shape: each filter has its own (column, id)
    index, so the page walks that index whatever the value.

    A prepared statement whose LIMIT is a bound value is planned again on every execution:
    PostgreSQL costs a generic plan as if the LIMIT were a tenth of the table, so it never
    prefers it. That planning cost more than the statement itself: at 1M tickets under load,
    0.57 ms of planning against 0.27 ms of execution for the agent queue's first page. With
    the page size written in, PostgreSQL settles on the generic plan after five executions.
    A search, a full-text query or a tag keeps its bound LIMIT, and so a plan per value: the
    best plan for a rare word (the trigram index) is not the one for a common word (the id
    index, newest first), and a generic plan would pick one for both."""
    if shape.search or shape.q or shape.tag:
        return False
    filters = (
        shape.reporter,
        shape.status,
        shape.assignee is not None,
        shape.priority,
        shape.team is not None,
    )
    if shape.sort != DEFAULT_SORT:
        return not any(filters)
    # (reporter_id, status, id) serves "my tickets" with a status.
    return sum(filters) <= 1 or (sum(filters) == 2 and shape.reporter and shape.status)


def _shape(
    spec: TicketFilter, cursor: str | None, *, page: int = 1, limit: int | None = None
) -> _Shape:
    counter = None
    extra = spec.priority or spec.team_id or spec.tag
    if not (spec.search or spec.q or (spec.reporter_id and spec.assignee_id) or extra):
        counter = "reporter" if spec.reporter_id else "assignee" if spec.assignee_id else "all"
    sort = spec.sort or DEFAULT_SORT
    segment = 0
    if cursor and sort != DEFAULT_SORT:
        segment = decode_sort_cursor(cursor, sort).segment
    shape = _Shape(
        priority=spec.priority is not None,
        team=None if spec.team_id is None else NO_TEAM if spec.team_id == NO_TEAM else "id",
        tag=spec.tag is not None,
        sort=sort,
        ranked=bool(spec.q) and spec.sort is None,
        keyset_segment=segment,
        capped=bool(spec.search or spec.q or (spec.reporter_id and spec.assignee_id)),
        reporter=spec.reporter_id is not None,
        status=bool(spec.status and spec.status != "all"),
        assignee=None
        if spec.assignee_id is None
        else UNASSIGNED
        if spec.assignee_id == UNASSIGNED
        else "id",
        search=bool(spec.search),
        q=bool(spec.q),
        # A sorted list's first keyset page ('') is its first offset page.
        keyset=cursor is not None if sort == DEFAULT_SORT else bool(cursor),
        counter=counter,
    )
    if limit is not None and (cursor is not None or page == 1):
        return _with_page_size(shape, limit)
    return shape


@functools.lru_cache(maxsize=1024)
def _with_page_size(shape: _Shape, limit: int) -> _Shape:
    """The first page's shape: its page size written in when one plan fits every value
    (cached: `dataclasses.replace` costs more than the lookup)."""
    if _plan_fits_every_value(shape):
        return dataclasses.replace(shape, page_size=limit)
    return shape


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
    if shape.priority:
        params["priority"] = spec.priority
    if shape.team == "id":
        params["team_id"] = spec.team_id
    if shape.tag:
        params["tag"] = spec.tag
    if shape.sort != DEFAULT_SORT:
        if cursor:
            where = decode_sort_cursor(cursor, shape.sort)
            params["cursor_id"] = where.id
            if where.key is not None:
                params["cursor_key"] = where.key
        else:
            params["offset"] = 0 if cursor is not None else (page - 1) * limit
        # Each segment reads as many rows as the page may need from it.
        params["reach"] = limit + 1 + params.get("offset", 0)
    elif cursor:
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
    if shape.priority:
        conditions.append(Ticket.priority == bindparam("priority", type_=Text))
    if shape.team == NO_TEAM:
        conditions.append(Ticket.team_id.is_(None))
    elif shape.team:
        conditions.append(Ticket.team_id == bindparam("team_id", type_=Text))
    if shape.tag:
        # tags @> ARRAY[:tag]: served by the GIN index ix_tickets_tags.
        tags = cast(array([bindparam("tag", type_=Text)]), ARRAY(Text))
        conditions.append(Ticket.tags.contains(tags))
    return conditions


def _tsquery() -> Any:
    # The 'simple' configuration, as the triggers that build search_vector use.
    return func.websearch_to_tsquery(
        literal_column("'simple'::regconfig"), bindparam("q", type_=Text)
    )


def _newest_matches(shape: _Shape) -> Any:
    """The ids of a capped list's newest `cap` matches: what its total counts, and where its
    offset page lies (`_capped_offset_page`).

    Newest first, as the page reads them: a common word is counted from the end of the id
    index. Without an order the planner took a sequential scan that stops at the cap;
    concurrent scans start where another one is (synchronized scans), and one that started in
    a stretch emptied by updates read 80 MB to find its first match: p99 1 s at 1M tickets
    under load. A rare word still uses the trigram index."""
    return (
        select(Ticket.id)
        .where(*_conditions(shape))
        .order_by(Ticket.id.desc())
        .limit(bindparam("cap", type_=Integer))
    )


@functools.lru_cache(maxsize=256)
def _count_statement(shape: _Shape) -> Any:
    if shape.counter is None:
        if shape.capped:
            return select(func.count()).select_from(_newest_matches(shape).subquery())
        matches = select(literal(1)).select_from(Ticket).where(*_conditions(shape))
        return select(func.count()).select_from(matches.subquery())
    query = select(func.coalesce(func.sum(TicketCount.n), 0)).where(
        TicketCount.scope == shape.counter, TicketCount.key == bindparam("count_key")
    )
    if shape.status:
        query = query.where(TicketCount.status == bindparam("status"))
    return query


def _sorted_page(shape: _Shape) -> Any:
    """The page's ids for an explicit sort: each segment from its own index, as far as the page
    can reach into it (`reach` rows), then merged in segment order; a cursor skips the segments
    before its own and starts within it after its (key, id)."""
    descending = _descending(shape.sort)
    segments = _segments(shape.sort)
    branches = []
    for number, segment in enumerate(segments):
        if shape.keyset and number < shape.keyset_segment:
            continue  # read before the cursor
        key = segment.key
        query = select(
            Ticket.id,
            literal(number, Integer).label("seg"),
            (key if key is not None else null().cast(DateTime(timezone=True))).label("k"),
        ).where(*_conditions(shape))
        if segment.where is not None:
            query = query.where(segment.where)
        if shape.keyset and number == shape.keyset_segment:
            cursor_id = bindparam("cursor_id", type_=BigInteger)
            if key is not None:
                mine = tuple_(key, Ticket.id)
                theirs = tuple_(bindparam("cursor_key", type_=DateTime(timezone=True)), cursor_id)
                query = query.where(mine < theirs if descending else mine > theirs)
            else:
                query = query.where(Ticket.id < cursor_id if descending else Ticket.id > cursor_id)
        order = [key, Ticket.id] if key is not None else [Ticket.id]
        query = query.order_by(*(c.desc() if descending else c for c in order))
        branches.append(query.limit(_row_limit(shape, "reach")))
    if len(branches) == 1:
        merged = branches[0].subquery("merged")
    else:
        merged = union_all(*(b.subquery().select() for b in branches)).subquery("merged")
    keys = [merged.c.k.desc(), merged.c.id.desc()] if descending else [merged.c.k, merged.c.id]
    page = select(merged.c.id, merged.c.seg, merged.c.k).order_by(merged.c.seg, *keys)
    if not shape.keyset and shape.page_size is None:
        page = page.offset(bindparam("offset", type_=Integer))
    return page.limit(_row_limit(shape, "limit")).subquery("page")


def _row_limit(shape: _Shape, name: str) -> Any:
    """How many rows to read: one more than the page (it tells whether there is a next page),
    written in when the shape has a page size, else the bound value `name`."""
    if shape.page_size is None:
        return bindparam(name, type_=Integer)
    return literal_column(str(shape.page_size + 1), Integer)


@functools.lru_cache(maxsize=256)
def _list_statement(shape: _Shape, *, rendered: bool = False) -> Any:
    if shape.sort != DEFAULT_SORT:
        page = _sorted_page(shape)
        total = _count_statement(shape).scalar_subquery().label("total")
        head = rendering.rendered_head() if rendered else with_form()
        query = head.add_columns(
            total, page.c.seg.label("sort_seg"), page.c.k.label("sort_key")
        ).join(page, page.c.id == Ticket.id)
        if _descending(shape.sort):
            return query.order_by(page.c.seg, page.c.k.desc(), Ticket.id.desc())
        return query.order_by(page.c.seg, page.c.k, Ticket.id)
    # The page is chosen on ticket ids alone and the columns (the JSON, the form) are built for
    # its rows only: rows an OFFSET skips have their select list computed all the same.
    ranked = shape.q and shape.ranked
    if shape.capped and not ranked and not shape.keyset:
        return _capped_offset_page(shape, rendered=rendered)
    rank = func.ts_rank(Ticket.search_vector, _tsquery()).label("rank")
    ids = select(Ticket.id, rank) if ranked else select(Ticket.id)
    ids = ids.where(*_conditions(shape))
    if shape.keyset:
        ids = ids.where(Ticket.id < bindparam("before", type_=BigInteger))
    ids = ids.order_by(rank.desc(), Ticket.id.desc()) if ranked else ids.order_by(Ticket.id.desc())
    if not shape.keyset and shape.page_size is None:
        ids = ids.offset(bindparam("offset", type_=Integer))
    page = ids.limit(_row_limit(shape, "limit")).subquery("page")
    total = _count_statement(shape).scalar_subquery().label("total")
    head = rendering.rendered_head() if rendered else with_form()
    query = head.add_columns(total).join(page, page.c.id == Ticket.id)
    if ranked:
        return query.order_by(page.c.rank.desc(), Ticket.id.desc())
    return query.order_by(Ticket.id.desc())


def _page_among_newest_matches(shape: _Shape) -> tuple[Any, Any]:
    """The offset page's ids taken from the newest matches, and their count (the capped
    total), both reading one materialized scan (`_capped_offset_page`)."""
    matches = _newest_matches(shape).cte("matches").prefix_with("MATERIALIZED")
    page = (
        select(matches.c.id)
        .order_by(matches.c.id.desc())
        .offset(bindparam("offset", type_=Integer))
        .limit(_row_limit(shape, "limit"))
        .subquery("page")
    )
    total = select(func.count()).select_from(matches).scalar_subquery().label("total")
    return page, total


def _capped_offset_page(shape: _Shape, *, rendered: bool) -> Any:
    """A search's offset page, newest first: its capped count and its page read from one scan.

    The count reads the newest `cap` matches, and an offset page always lies among them (the
    cap reaches SEARCH_PAGES_AHEAD pages past it, at least one). So the matches are found
    once, kept (a CTE read twice is materialized), counted, and the page taken from them. Two
    scans of the same condition had meant two to plan on every request, and a search cannot
    keep a plan (see `_plan_fits_every_value`): at 1,000,000 tickets planning took 0.78 ms
    against 0.58 ms now, and a common word's execution 1.9 ms against 1.0 ms (EXPLAIN
    ANALYZE, quiet)."""
    page, total = _page_among_newest_matches(shape)
    head = rendering.rendered_head() if rendered else with_form()
    return head.add_columns(total).join(page, page.c.id == Ticket.id).order_by(Ticket.id.desc())


def _reads_ids_apart(shape: _Shape) -> bool:
    """Whether the API reads this shape's page as ids and total first, rendered apart."""
    return (
        shape.capped
        and not (shape.q and shape.ranked)
        and not shape.keyset
        and shape.sort == DEFAULT_SORT
    )


@functools.lru_cache(maxsize=64)
def _capped_ids_statement(shape: _Shape) -> RawStatement:
    """The ids of a capped offset page (limit + 1 of them, newest first), each row with the
    capped total: `_capped_offset_page` without its rendering."""
    page, total = _page_among_newest_matches(shape)
    return RawStatement(select(page.c.id, total).order_by(page.c.id.desc()))


@functools.cache
def _rendered_by_ids() -> RawStatement:
    """The API's rendering of the tickets with these ids, newest first. Its shape fits every
    value: planned once per connection, where the search that chose the ids is planned on
    every request (`_plan_fits_every_value`)."""
    ids = cast(bindparam("ids"), ARRAY(BigInteger))
    return RawStatement(
        rendering.rendered_head().where(Ticket.id == any_(ids)).order_by(Ticket.id.desc())
    )


async def _rendered_apart(
    db: AsyncSession,
    spec: TicketFilter,
    shape: _Shape,
    params: dict[str, Any],
    *,
    page: int,
    limit: int,
) -> TicketPage[Any]:
    """A capped offset page read in two statements: its ids and total (planned per value),
    then their rendering (a cached plan).

    In one statement the rendering head was planned again with every search: at 1,000,000
    tickets 0.69 ms of planning per search against 0.29 ms for the ids and total alone and
    0.26 ms for the rendering alone (EXPLAIN SUMMARY, quiet, medians of 30). The second round
    trip costs less than the planning it saves. Read-only requests run each statement on its
    own (db/session.py): a ticket deleted between the two is left out of the page."""
    found = await _capped_ids_statement(shape).fetch(db, **params)
    result = await _page_of(
        db, found, spec, shape, params, page=page, limit=limit, cursor=None, rendered=True
    )
    if not result.rows:
        return result
    rows = await _rendered_by_ids().fetch(db, ids=[row["id"] for row in result.rows])
    return dataclasses.replace(result, rows=rows)


def _check(spec: TicketFilter, cursor: str | None) -> None:
    if spec.sort is not None and spec.sort not in SORTS:
        raise ValidationFailed(
            f"sort: one of {', '.join(SORTS)}.",
            errors=[{"field": "sort", "message": f"One of {', '.join(SORTS)}"}],
        )
    if spec.priority is not None and spec.priority not in PRIORITY_ORDER:
        raise ValidationFailed(
            "priority: one of low, normal, high, urgent.",
            errors=[{"field": "priority", "message": "One of low, normal, high, urgent"}],
        )
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
    shape = _shape(spec, cursor, page=page, limit=limit)
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
    shape = _shape(spec, cursor, page=page, limit=limit)
    params = _params(spec, shape, page=page, limit=limit, cursor=cursor)
    result: Sequence[Any]
    if rendered and _reads_ids_apart(shape):
        return await _rendered_apart(db, spec, shape, params, page=page, limit=limit)
    if rendered:
        result = await _raw_list_statement(shape).fetch(db, **params)
    else:
        result = (await db.execute(_list_statement(shape), params)).all()
    return await _page_of(
        db, result, spec, shape, params, page=page, limit=limit, cursor=cursor, rendered=rendered
    )


# The values that stand for the caller in "my tickets": its page and its count.
_CALLER_VALUES = ("reporter_id", "count_key")
# What `list_mine_rendered` files as the reporter until the lookup names the caller.
_NOT_LOOKED_UP = "(the caller)"


@functools.lru_cache(maxsize=64)
def _joined_list_statement(shape: _Shape) -> JoinedRead:
    return joined_read(
        _list_statement(shape, rendered=True),
        user_params=_CALLER_VALUES,
        order_by=lambda read: [read.id.desc()],
    )


async def list_mine_rendered(
    db: AsyncSession,
    caller: Caller,
    *,
    status: str | None,
    search: str | None,
    q: str | None,
    page: int,
    limit: int,
    cursor: str | None = None,
) -> TicketPage[str]:
    """The caller's own tickets as `list_rendered` gives them; a page read newest first
    carries the caller's lookup in its statement (accounts/joined.py)."""
    spec = TicketFilter(reporter_id=_NOT_LOOKED_UP, status=status, search=search, q=q)
    _check(spec, cursor)
    shape = _shape(spec, cursor, page=page, limit=limit)
    if shape.sort != DEFAULT_SORT or shape.ranked:  # only newest first is ordered by the join
        principal = await caller.principal()
        spec = dataclasses.replace(spec, reporter_id=principal.user.id)
        return await list_rendered(db, spec=spec, page=page, limit=limit, cursor=cursor)
    params = _params(spec, shape, page=page, limit=limit, cursor=cursor)
    principal, result = await caller.fetch(db, _joined_list_statement(shape), **params)
    spec = dataclasses.replace(spec, reporter_id=principal.user.id)
    if not result:  # an empty page past the first counts the caller's tickets on its own
        params = _params(spec, shape, page=page, limit=limit, cursor=cursor)
    found = await _page_of(
        db, result, spec, shape, params, page=page, limit=limit, cursor=cursor, rendered=True
    )
    items = await rendering.with_forms(db, found.rows)
    return TicketPage(items, found.total, found.next_cursor, found.total_capped)


async def _page_of(
    db: AsyncSession,
    result: Sequence[Any],
    spec: TicketFilter,
    shape: _Shape,
    params: dict[str, Any],
    *,
    page: int,
    limit: int,
    cursor: str | None,
    rendered: bool,
) -> TicketPage[Any]:
    """The page of a list statement's rows: the total from its first row (counted apart when
    the page is empty) and the cursor of the next page."""
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
        last_id = last["id"] if rendered else last[0].id
        if shape.sort == DEFAULT_SORT:
            next_cursor = encode_cursor(last_id)
        else:
            segment, key = (
                (last["sort_seg"], last["sort_key"]) if rendered else (last.sort_seg, last.sort_key)
            )
            next_cursor = encode_sort_cursor(shape.sort, SortCursor(segment, key, last_id))
    cap = search_count_cap(page=page, limit=limit)
    capped = shape.capped and total > cap
    return TicketPage(
        rows=rows,
        total=cap if capped else total,
        next_cursor=next_cursor,
        total_capped=capped,
    )
