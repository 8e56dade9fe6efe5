"""The `/admin/system` page: health, pool, heaviest statements, backups and charts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from tekudasai.config import Settings
from tekudasai.monitoring import system
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
        # Markup: the SVG is built by our own code, every label in it escaped.
        "size": Markup(  # noqa: S704
            system.line_chart(
                {"database": snap.size_points}, title="Database size", fmt=system.human_bytes
            )
        ),
        "latency": Markup(  # noqa: S704
            system.line_chart(snap.latency_points, title="Request latency (ms)", unit=" ms")
        ),
        "requests": Markup(  # noqa: S704
            system.line_chart({"requests": snap.request_points}, title="Requests per minute")
        ),
    }
    return render(request, "admin/system.html", {"snap": snap, "charts": charts})
