"""A route's first read with the caller's session lookup in the same statement.

On the hottest reads (my tickets, my ticket) the session lookup was a round trip of its own
before the read: measured on the peer bench (bench/peer.py data, wrk -c32, 2 workers) at
about 180 µs of PostgreSQL's CPU and 330 µs of the workers' per request, a fifth of each.
Here the lookup is a CTE that the read takes its user from, and the statement answers the
session's row first (the same columns and conditions as `dependencies._principal_statement`),
then the read's rows. One snapshot answers both, so a session revoked or expired before the
statement is refused as before, and what the read returns is discarded unless the caller
passes the same checks as on the usual path (`dependencies.Caller.fetch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    LargeBinary,
    bindparam,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.sql import CompoundSelect, Select
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import replacement_traverse

from tekudasai.accounts.models import Session, User
from tekudasai.accounts.signed_in import SESSION_FIELDS, USER_FIELDS
from tekudasai.db.raw import RawStatement

# The lookup's columns are labelled apart from the read's own, which keep their names.
_PREFIX = "tk_caller_"
# A column that is NULL in the caller's row and true in the read's rows.
FOUND = "tk_found"
# How many columns of each row are the caller's (user, then session).
CALLER_WIDTH = len(USER_FIELDS) + len(SESSION_FIELDS)


@dataclass(frozen=True, slots=True)
class JoinedRead:
    """A read in its two forms: alone (the user bound as values) and with the lookup."""

    alone: RawStatement
    joined: RawStatement
    user_params: tuple[str, ...]


def joined_read(
    read: Select[Any], *, user_params: tuple[str, ...], order_by: Any = ()
) -> JoinedRead:
    """`read` whose bound values named in `user_params` stand for the caller's user id.

    The joined statement answers the caller's row first (the read's columns NULL), then the
    read's rows (the caller's columns NULL), each column sent once: the caller's columns on
    every row of a page cost more to send and decode than they saved. `order_by` takes the
    statement's columns and orders the read's rows (its own ORDER BY orders its subquery,
    not the union around it)."""
    caller = (
        select(
            *(getattr(User, name).label(f"{_PREFIX}u_{name}") for name in USER_FIELDS),
            *(getattr(Session, name).label(f"{_PREFIX}s_{name}") for name in SESSION_FIELDS),
        )
        .join(Session, Session.user_id == User.id)
        .where(
            Session.token_hash == bindparam("token_hash", type_=LargeBinary),
            Session.expires_at > func.now(),
        )
        .cte("caller")
    )
    # Each value of the user becomes a scalar subquery on the lookup: one lookup (a CTE
    # referenced more than once is evaluated once), and the read's plan keeps its indexes
    # (an InitPlan's value, as a bound value's).
    user_id = select(caller.c[f"{_PREFIX}u_id"]).scalar_subquery()

    def bound_to_caller(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in user_params:
            return user_id
        return None

    marked = read.add_columns(literal_column("true", Boolean).label(FOUND))
    no_options: dict[str, Any] = {}
    bound = cast(Select[Any], replacement_traverse(marked, no_options, bound_to_caller))
    found = bound.subquery("read")
    # A NULL takes the type of the other branch's column (PostgreSQL's UNION resolution).
    both: CompoundSelect[Any] = union_all(
        select(*caller.c, *(null().label(column.name) for column in found.c)),
        select(*(null().label(column.name) for column in caller.c), *found.c),
    )
    columns = both.selected_columns
    ordering = order_by(columns) if callable(order_by) else order_by
    statement = both.order_by(columns[FOUND].nulls_first(), *ordering)
    return JoinedRead(RawStatement(read), RawStatement(statement), user_params)
