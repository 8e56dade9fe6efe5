"""The `/admin/system` page: health, pool, heaviest statements, backups and charts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from tekudasai.config import Settings
from tekudasai.monitoring import system
from tekudasai.web.charts import line_chart
from tekudasai.web.deps import PageAdmin
from tekudasai.web.rendering import render, templates

router = APIRouter(include_in_schema=False)

templates.env.filters["bytes"] = system.human_bytes


@router.get("/admin/system", response_class=HTMLResponse)
async def system_page(request: Request, principal: PageAdmin) -> Response:
    """Health, pool, heaviest statements, backups and charts (admins; others get 404)."""
    settings: Settings = request.app.state.settings
    snap = await system.snapshot(request.app.state.database, settings)
    charts = {
        "size": line_chart(
            {"database": snap.size_points}, title="Database size", fmt=system.human_bytes
        ),
        "latency": line_chart(snap.latency_points, title="Request latency (ms)", unit=" ms"),
        "requests": line_chart({"requests": snap.request_points}, title="Requests per minute"),
    }
    return render(request, "admin/system.html", {"snap": snap, "charts": charts})
