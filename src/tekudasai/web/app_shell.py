"""What makes the web UI an installable app: the web manifest, the service worker, the offline page.

The worker (templates/app_shell/sw.js) precaches the static assets and the offline page under a
version derived from their contents, so a deploy that changes any of them replaces the cache.
Pages and API answers are never cached: they hold personal data and must be current.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from tekudasai.accounts.dependencies import MaybeUser
from tekudasai.web.rendering import HERE, secure_page, templates

router = APIRouter()
STATIC = HERE / "static"
OFFLINE_PATH = "/offline"
THEME_LIGHT = "#4f46e5"  # --primary in app.css
BACKGROUND = "#f6f7fb"  # --bg in app.css
PRECACHED_SUFFIXES = {".css", ".js", ".svg", ".png"}

MANIFEST: dict[str, Any] = {
    "id": "/",
    "name": "Te Kudasai service desk",
    "short_name": "Te Kudasai",
    "description": "File, follow and answer support tickets.",
    "lang": "en",
    "start_url": "/app",
    "scope": "/",
    "display": "standalone",
    "theme_color": THEME_LIGHT,
    "background_color": BACKGROUND,
    "icons": [
        {"src": "/static/icons/icon-192.png", "sizes": "192x192", "type": "image/png"},
        {"src": "/static/icons/icon-512.png", "sizes": "512x512", "type": "image/png"},
        {
            "src": "/static/icons/icon-maskable-512.png",
            "sizes": "512x512",
            "type": "image/png",
            "purpose": "maskable",
        },
        {"src": "/static/icons/icon.svg", "sizes": "any", "type": "image/svg+xml"},
    ],
}


@cache
def precache() -> tuple[str, tuple[str, ...]]:
    """(version, static asset URLs); the version changes whenever an asset or template does."""
    digest = hashlib.sha256()
    assets = []
    for path in sorted(STATIC.rglob("*")):
        if path.is_file() and path.suffix in PRECACHED_SUFFIXES:
            rel = path.relative_to(STATIC).as_posix()
            assets.append(f"/static/{rel}")
            digest.update(rel.encode() + b"\0" + path.read_bytes())
    for path in sorted((HERE / "templates").rglob("*.html")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16], tuple(assets)


@router.get("/manifest.webmanifest")
async def manifest() -> Response:
    response = JSONResponse(MANIFEST, media_type="application/manifest+json")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@router.get("/sw.js")
async def service_worker(request: Request) -> Response:
    """Served from the root so that its scope is the whole app."""
    version, assets = precache()
    body = templates.get_template("app_shell/sw.js").render(
        version=version, assets=list(assets), offline=OFFLINE_PATH
    )
    response = Response(body, media_type="text/javascript")
    secure_page(response)
    response.headers["Cache-Control"] = "no-cache"  # browsers check for a new worker each visit
    return response


@router.get(OFFLINE_PATH)
async def offline(request: Request) -> Response:
    """The page the worker shows when the network is gone; it names nobody (it is cached)."""
    response = templates.TemplateResponse(
        request,
        "app_shell/offline.html",
        {"user": None, "nav": [], "flashes": [], "csrf": "", "path": OFFLINE_PATH},
    )
    secure_page(response)
    return response


@router.get("/app")
async def start(principal: MaybeUser) -> Response:
    """The installed app's start page: the queue for staff, the own tickets for customers."""
    target = "/auth/login" if principal is None else "/agent" if principal.is_staff else "/"
    response = RedirectResponse(target, status_code=303)
    secure_page(response)
    return response
