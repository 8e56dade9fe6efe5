"""Request-level checks for the tickets routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from tekudasai.accounts.limits import rate_limit

# Ticket ids are PostgreSQL integers: anything else is a 400 before it reaches the database.
TicketId = Annotated[int, Path(ge=1, le=2_147_483_647, description="ticket id")]


# RATE LIMIT (`tickets`, default 60/minute per user): the one place it is applied.
TicketsRateLimit = Annotated[None, Depends(rate_limit("tickets"))]
