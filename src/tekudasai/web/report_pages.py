"""`/agent/reports`: the reports summary as figures, charts and tables (agents and admins).

A plain GET form chooses the period and team; the figures come from the same service as
`GET /api/reports/summary`, and every chart has its numbers in a table next to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tekudasai.core.errors import AppError
from tekudasai.core.state import Cipher
from tekudasai.db.session import ReadDb
from tekudasai.reports import service as reports
from tekudasai.teams import service as teams
from tekudasai.web.deps import PageAgent
from tekudasai.web.rendering import render
from tekudasai.web.report_charts import duration, percent, row_chart, volume_chart

router = APIRouter()
REPORTS = "/agent/reports"


def charts(data: dict[str, Any]) -> dict[str, Any]:
    first, resolution = data["firstResponseMinutes"], data["resolutionMinutes"]
    sla = data["slaMet"]
    return {
        "volume": volume_chart(data["byDay"], title="Tickets created and resolved per day"),
        "first_response": row_chart(
            [("Median (p50)", first["p50"]), ("90th percentile (p90)", first["p90"])],
            title="Time to first response",
            fmt=duration,
        ),
        "resolution": row_chart(
            [("Median (p50)", resolution["p50"]), ("90th percentile (p90)", resolution["p90"])],
            title="Time to resolution",
            fmt=duration,
        ),
        "sla": row_chart(
            [("Met", sla), ("Breached", None if sla is None else 1 - sla)],
            title="SLA attainment",
            fmt=percent,
            top=1.0,
        ),
    }


@router.get(REPORTS)
async def reports_page(request: Request, agent: PageAgent, db: ReadDb, cipher: Cipher) -> Response:
    query = request.query_params
    form = {
        "from": query.get("from", "")[:10],
        "to": query.get("to", "")[:10],
        "team_id": query.get("teamId", "")[:100],
    }
    team_list = await teams.list_teams(db)
    errors: dict[str, str] = {}
    data: dict[str, Any] | None = None
    try:
        period = reports.period_of(
            form["from"] or None, form["to"] or None, form["team_id"] or None
        )
        data = await reports.summary(db, cipher, period)
    except AppError as error:
        errors = {e["field"]: e["message"] for e in error.errors or []} or {"from": error.message}
    if data is not None:
        form["from"], form["to"] = data["from"], data["to"]
    return render(
        request,
        "agent/reports.html",
        {
            "form": form,
            "errors": errors,
            "teams": team_list,
            "data": data,
            "charts": charts(data) if data is not None else None,
            "duration": duration,
            "percent": percent,
        },
        status=400 if errors else 200,
    )
