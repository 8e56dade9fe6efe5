"""Prefix dispatch: a request under /api/<area>/ is matched only against that area's routes.

FastAPI matches a request by trying every route in order; with the API mounted twice
(/api and /api/v1) next to the pages, that is dozens of regex matches per request. Here each
area (/api/tickets, /api/v1/auth, …) gets a router holding only the routes that can match
below it, in their original order, so the first match, 405s and slash redirects stay what
the full router would give. An area is only dispatched when no other route in the app could
match a path below it (checked against the app's final route table); anything else goes
through the full router unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send


def get_route_path(scope: Scope) -> str:
    """The path the app's routes match against: the request path below the root path (what
    Starlette's router does; its helper for this is private)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path) :] if path[len(root_path)] == "/" else path


def _could_match(template: str, area: str) -> bool:
    """Whether a route template could match some path at or below `area`."""
    cut = template.find("{")
    if cut < 0:
        return template == area or template.startswith(area + "/")
    literal = template[:cut]
    return literal.startswith(area) or area.startswith(literal)


def _identity(route: object) -> tuple[object, str, object]:
    methods = getattr(route, "methods", None)
    return getattr(route, "endpoint", None), route.path_format, frozenset(methods or ())  # type: ignore[attr-defined]


def area_of(path: str, prefixes: Sequence[str]) -> str | None:
    """`/api/v1/tickets/my/3` → `/api/v1/tickets` (the longest prefix wins), else None."""
    for prefix in prefixes:
        if path.startswith(prefix) and len(path) > len(prefix):
            head = path[len(prefix) :].split("/", 1)[0]
            if head:
                return prefix + head
    return None


class Lane:
    """The routers that serve an area, under its prefix: included on the area's first request.

    Including a router copies every route (dependency tree, validators, serializer; about 20 kB
    a route), so a worker only pays for the areas it serves (an /api/v1 area only once a
    client uses /api/v1). What the lane will hold is known before: `expected` (its routes'
    identities, read from the routers' own templates). The included router is checked against
    it; should they differ, the area goes to the full router.
    """

    def __init__(self, prefix: str, routers: Sequence[APIRouter]) -> None:
        self.prefix = prefix
        self.routers = tuple(routers)
        self.expected = [
            (endpoint, prefix + (path or ""), methods)
            for router in self.routers
            for endpoint, path, methods in map(_identity, iter_route_contexts(router.routes))
        ]
        self.router: APIRouter | None = None
        self.unusable = False

    def included(self) -> APIRouter | None:
        if self.router is None and not self.unusable:
            router = APIRouter()
            for included in self.routers:
                router.include_router(included, prefix=self.prefix)
            if [_identity(c) for c in iter_route_contexts(router.routes)] == self.expected:
                self.router = router
            else:
                self.unusable = True
        return self.router


def build_lanes(
    app_routes: Sequence[BaseRoute], prefixes: Sequence[str], routers: Sequence[APIRouter]
) -> dict[str, Lane]:
    """One lane per area, kept only where it holds every route that could match there.

    Areas served by the same routers share one lane. Nothing is included yet (`Lane`).
    """
    owners: dict[str, list[APIRouter]] = {}
    for prefix in prefixes:
        for router in routers:
            # The router's own templates under the prefix: what including it would give.
            for context in iter_route_contexts(router.routes):
                path = prefix.rstrip("/") + (context.path_format or "")
                area = area_of(path, [prefix])
                if area and router not in owners.setdefault(area, []):
                    owners[area].append(router)
    everything = list(iter_route_contexts(app_routes))
    lanes: dict[str, Lane] = {}
    shared: dict[tuple[str, tuple[int, ...]], Lane] = {}
    for area, area_routers in owners.items():
        prefix = area.rsplit("/", 1)[0]
        key = (prefix, tuple(id(router) for router in area_routers))
        lane = shared.get(key)
        if lane is None:
            lane = shared[key] = Lane(prefix, area_routers)
        expected = [_identity(c) for c in everything if _could_match(c.path_format or "", area)]
        got = [g for g in lane.expected if _could_match(g[1], area)]
        if expected == got:
            lanes[area] = lane
    return lanes


class PrefixDispatch:
    """Sits where the app's router runs its routes; hands known areas to their own router."""

    def __init__(
        self,
        app: FastAPI,
        fallback: ASGIApp,
        prefixes: Sequence[str],
        routers: Sequence[APIRouter],
    ) -> None:
        self.app = app
        self.fallback = fallback
        # Longest first, so /api/v1/ wins over /api/.
        self.prefixes = sorted(prefixes, key=len, reverse=True)
        self.routers = routers
        self.lanes: dict[str, Lane] | None = None
        self.built_for = -1

    def _lanes(self) -> dict[str, Lane]:
        # Built on first use, when every route (pages, static files) is in place.
        if self.lanes is None or self.built_for != len(self.app.router.routes):
            self.lanes = build_lanes(self.app.router.routes, self.prefixes, self.routers)
            self.built_for = len(self.app.router.routes)
        return self.lanes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            area = area_of(get_route_path(scope), self.prefixes)
            lane = self._lanes().get(area) if area else None
            router = lane.included() if lane is not None else None
            if router is not None:
                scope.setdefault("router", self.app.router)  # url_for sees every route
                await router.app(scope, receive, send)
                return
        await self.fallback(scope, receive, send)


def install_prefix_dispatch(
    app: FastAPI, *, prefixes: Sequence[str], routers: Sequence[APIRouter]
) -> None:
    """Route /api/<area>/… requests through that area's routes only."""
    app.router.middleware_stack = PrefixDispatch(
        app, app.router.middleware_stack, [p.rstrip("/") + "/" for p in prefixes], routers
    )
