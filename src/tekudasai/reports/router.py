"""Reports API (agents and admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from tekudasai.accounts.dependencies import Agent, scopes
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.schemas import ERROR_RESPONSES, Envelope, ok
from tekudasai.core.state import Cipher
from tekudasai.db.session import ReadDb, read_only
from tekudasai.reports import service
from tekudasai.reports.schemas import Summary

router = APIRouter(
    prefix="/reports", tags=["reports"], responses=ERROR_RESPONSES, route_class=DirectRoute
)

Day = Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD (UTC day, included)")]


@router.get("/summary", openapi_extra=scopes("reports:read"), response_model=Envelope[Summary])
@read_only
async def summary(
    agent: Agent,
    db: ReadDb,
    cipher: Cipher,
    from_: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    to: Day = None,
    team_id: Annotated[str | None, Query(alias="teamId", max_length=100)] = None,
) -> dict[str, Any]:
    """Figures of the tickets of a period; the definitions are in reports/service.py."""
    period = service.period_of(from_, to, team_id)
    return ok(await service.summary(db, cipher, period))
