"""Reply collisions: public replies by others since the replying agent last looked."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.models import User
from tekudasai.tickets.conversation import CommentRow
from tekudasai.tickets.models import TicketComment

MAX_SHOWN = 20


async def newer_public_replies(
    db: AsyncSession, *, ticket_id: int, seen: int, me: str
) -> list[CommentRow]:
    """Public comments on the ticket after comment id `seen` that someone else wrote."""
    query = (
        select(TicketComment, User)
        .outerjoin(User, User.id == TicketComment.author_id)
        .where(
            TicketComment.ticket_id == ticket_id,
            TicketComment.id > seen,
            TicketComment.internal.is_(False),
            TicketComment.author_id.is_distinct_from(me),
        )
        .order_by(TicketComment.id)
        .limit(MAX_SHOWN)
    )
    return [CommentRow(comment=c, author=u) for c, u in (await db.execute(query)).all()]
