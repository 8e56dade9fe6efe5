"""Server-rendered web UI: page routes, Jinja2 templates and static assets."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tekudasai.core.crypto import derive_key
from tekudasai.web.deps import PageRedirect
from tekudasai.web.flash import flash
from tekudasai.web.rendering import HERE, render_error_page, secure_page


def install_web(app: FastAPI) -> None:
    """Static files, the HTML error renderer and the page-redirect handler."""
    app.state.web_key = derive_key(app.state.settings.master_secret(), "tekudasai/web/v1")
    app.state.render_error_page = render_error_page
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(PageRedirect)
    async def page_redirect(request: Request, exc: PageRedirect) -> Response:
        response = RedirectResponse(exc.url, status_code=303)
        if exc.message:
            flash(request, response, exc.message, exc.kind)  # type: ignore[arg-type]
        secure_page(response)
        return response
