"""Presence: an agent says every ≤ 30 s that they are viewing or replying to a ticket; the
row lasts `live_presence_ttl_s` (45 s) after the last one. Stored in an UNLOGGED table so a
page opened later on any node sees who is already there (the POST answers with them), and
announced with a NOTIFY so open pages learn of it at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.crypto import PiiCipher
from tekudasai.core.schemas import iso
from tekudasai.live import publish
from tekudasai.tickets.errors import TicketNotFound


class PresenceState(StrEnum):
    VIEWING = "viewing"
    REPLYING = "replying"


@dataclass(frozen=True)
class Present:
    user_id: str
    name: str
    state: str
    expires_at: datetime

    def view(self, ticket_id: int) -> dict[str, object]:
        return {
            "ticketId": ticket_id,
            "userId": self.user_id,
            "name": self.name,
            "state": self.state,
            "expiresAt": iso(self.expires_at),
        }


_UPSERT = text(
    """
    WITH gone AS (
        DELETE FROM ticket_presence WHERE ticket_id = :ticket_id AND expires_at < now()
    )
    INSERT INTO ticket_presence (ticket_id, user_id, state, expires_at)
    SELECT t.id, :user_id, :state, now() + make_interval(secs => :ttl)
    FROM tickets t WHERE t.id = :ticket_id
    ON CONFLICT (ticket_id, user_id)
    DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at
    RETURNING expires_at
    """
)
_PRESENT = text(
    "SELECT p.user_id, p.state, p.expires_at, u.name_ciphertext FROM ticket_presence p "
    "JOIN users u ON u.id = p.user_id "
    "WHERE p.ticket_id = :ticket_id AND p.expires_at > now() ORDER BY p.user_id"
)


async def announce(
    db: AsyncSession,
    cipher: PiiCipher,
    *,
    ticket_id: int,
    user_id: str,
    name: str,
    state: PresenceState,
    ttl_s: float,
) -> tuple[Present, list[Present]]:
    """Record the presence and send it to the ticket's watchers; returns it and the others
    present now. 404 when the ticket does not exist."""
    row = (
        await db.execute(
            _UPSERT,
            {"ticket_id": ticket_id, "user_id": user_id, "state": state.value, "ttl": ttl_s},
        )
    ).first()
    if row is None:
        raise TicketNotFound()
    me = Present(user_id=user_id, name=name, state=state.value, expires_at=row.expires_at)
    await publish.presence(db, me.view(ticket_id))
    others = [
        Present(
            user_id=r.user_id,
            name=cipher.decrypt(r.name_ciphertext, context="user.name"),
            state=r.state,
            expires_at=r.expires_at,
        )
        for r in (await db.execute(_PRESENT, {"ticket_id": ticket_id})).all()
        if r.user_id != user_id
    ]
    return me, others
