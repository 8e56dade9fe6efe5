"""Request-level checks for the tickets routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

# Ticket ids are PostgreSQL integers: anything else is a 400 before it reaches the database.
TicketId = Annotated[int, Path(ge=1, le=2_147_483_647, description="ticket id")]

# RATE LIMIT (`tickets`, default 60/minute per user): the one place it is applied. It comes
# from core/ratelimit.py (branch `accounts`); until that module is merged this is a no-op.
try:
    from tekudasai.core.ratelimit import rate_limit
except ImportError:  # pragma: no cover - only before the accounts branch is merged

    async def _no_limit() -> None:
        return None

    TicketsRateLimit = Annotated[None, Depends(_no_limit)]
else:
    TicketsRateLimit = Annotated[None, Depends(rate_limit("tickets"))]
