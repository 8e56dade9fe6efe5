"""Prefix dispatch answers exactly what the full router would, only faster."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI

from tekudasai.app import API_PREFIXES, API_ROUTERS
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.routing import Lane, PrefixDispatch, area_of, build_lanes
from tekudasai.db.session import Database
from tests.factories import make_person


def test_areas_are_the_first_segment_below_the_longest_prefix() -> None:
    prefixes = ["/api/v1/", "/api/"]
    assert area_of("/api/tickets/my/3", prefixes) == "/api/tickets"
    assert area_of("/api/tickets", prefixes) == "/api/tickets"
    assert area_of("/api/v1/tickets/my", prefixes) == "/api/v1/tickets"
    assert area_of("/api/v1", prefixes) == "/api/v1"  # no such area: the full router answers
    assert area_of("/api/", prefixes) is None
    assert area_of("/agent/tickets", prefixes) is None


def test_every_api_area_gets_a_lane(app: FastAPI) -> None:
    dispatch = app.router.middleware_stack
    assert isinstance(dispatch, PrefixDispatch)
    lanes = dispatch._lanes()
    for area in ("/api/tickets", "/api/v1/tickets", "/api/auth", "/api/forms", "/api/health"):
        assert area in lanes
    assert "/api/v1" not in lanes


def test_an_area_another_route_could_match_is_not_dispatched(app: FastAPI) -> None:
    extra = APIRouter()

    @extra.get("/api/tickets/{anything}/extra")
    async def elsewhere() -> None: ...

    app.include_router(extra)
    lanes = build_lanes(app.router.routes, ["/api/v1/", "/api/"], API_ROUTERS)
    assert "/api/tickets" not in lanes
    assert "/api/v1/tickets" in lanes


async def test_routes_added_after_start_are_still_served(app: FastAPI) -> None:
    late = APIRouter()

    @late.get("/api/tickets/late/{word}/probe")
    async def probe(word: str) -> dict[str, str]:
        return {"word": word}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        assert (await http.get("/api/health")).status_code == 200  # lanes built
        app.include_router(late)
        response = await http.get("/api/tickets/late/hello/probe")
    assert response.json() == {"word": "hello"}


async def test_dispatched_areas_keep_404_405_redirects_and_labels(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    for prefix in API_PREFIXES:
        listed = await client.get(f"{prefix}/tickets/my", headers=person.auth)
        assert listed.status_code == 200
        assert listed.json()["status"] == "success"
        missing = await client.get(f"{prefix}/tickets/my/nope/deeper", headers=person.auth)
        assert missing.status_code == 404
        assert missing.json()["code"] == "NOT_FOUND"
        wrong = await client.put(f"{prefix}/tickets/my", headers=person.auth)
        assert wrong.status_code == 405
        assert wrong.json()["code"] == "METHOD_NOT_ALLOWED"
        slash = await client.get(f"{prefix}/tickets/my/", headers=person.auth)
        assert slash.status_code == 307
        assert slash.headers["location"].endswith(f"{prefix}/tickets/my")
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/tickets/my"' in metrics
    assert 'route="/api/v1/tickets/my"' in metrics


async def test_openapi_and_docs_still_answer(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    assert "/api/tickets/my" in schema["paths"]
    assert not any(path.startswith("/api/v1/") for path in schema["paths"])
    assert (await client.get("/api/docs")).status_code == 200


async def test_a_lane_is_included_on_its_areas_first_request(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    dispatch = app.router.middleware_stack
    assert isinstance(dispatch, PrefixDispatch)
    assert (await client.get("/api/health")).status_code == 200
    lanes = dispatch._lanes()
    assert lanes["/api/health"].router is not None
    # Nothing under /api/v1 was asked for: its copies of the routes were never built.
    assert all(lane.router is None for area, lane in lanes.items() if area.startswith("/api/v1/"))
    assert (await client.get("/api/v1/health")).status_code == 200
    assert lanes["/api/v1/health"].router is not None


def test_a_lane_that_would_not_hold_what_was_checked_is_not_used() -> None:
    router = APIRouter()

    @router.get("/things")
    async def things() -> None: ...

    lane = Lane("/api", [router])

    @router.get("/things/{id}")
    async def thing(id: str) -> None: ...  # added after the lane was checked

    assert lane.included() is None
    assert lane.unusable
