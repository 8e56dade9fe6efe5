"""A DirectRoute answers exactly what FastAPI's own handler answers, errors included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse

from tekudasai.accounts.dependencies import CurrentUser
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.direct_routes import DirectRoute, compile_plan, unshielded
from tekudasai.core.errors import AppError
from tekudasai.core.schemas import query_model
from tekudasai.db.session import Database, DbSession, ReadDb, read_only
from tekudasai.tickets.dependencies import TicketId
from tekudasai.tickets.router import router as tickets_router
from tekudasai.tickets.schemas import MyTicketsQuery
from tests.factories import make_person

trace: list[str] = []


class Refused(AppError):
    status_code = 409
    code = "REFUSED"
    message = "Refused on purpose."


async def counted(request: Request) -> int:
    trace.append("counted")
    return len(trace)


async def opened(request: Request) -> AsyncIterator[str]:
    trace.append("open")
    try:
        yield "resource"
    finally:
        trace.append("close")


async def guarded(request: Request) -> AsyncIterator[str]:
    trace.append("open")
    try:
        yield "resource"
    except Refused:
        trace.append("saw the refusal")
        raise
    finally:
        trace.append("close")


def sync_dependency() -> int:
    return 1


async def twice(
    first: Annotated[int, Depends(counted)], again: Annotated[int, Depends(counted)]
) -> int:
    return first + again


my_query = query_model(MyTicketsQuery)


def routes(router: APIRouter) -> APIRouter:

    @router.get("/one/{id}")
    @read_only
    async def one(
        id: TicketId,
        me: CurrentUser,
        db: ReadDb,
        primary: DbSession,
        query: Annotated[MyTicketsQuery, Depends(my_query)],
        request: Request,
        response: Response,
        thing: Annotated[str | None, Header()] = None,
    ) -> Response:
        same = db is primary and request.scope["state"]["principal"] is me
        return JSONResponse(
            {"id": id, "user": me.user.id, "page": query.page, "thing": thing, "same": same}
        )

    @router.get("/deps")
    async def deps(
        db: DbSession,
        sum_: Annotated[int, Depends(twice)],
        resource: Annotated[str, Depends(opened)],
        first: Annotated[int, Depends(counted)],
    ) -> Response:
        trace.append("endpoint")
        return JSONResponse({"sum": sum_, "resource": resource, "first": first})

    @router.get("/refuse/{id}")
    async def refuse(id: TicketId, me: CurrentUser) -> Response:
        raise Refused()

    @router.get("/unshielded")
    @unshielded
    async def plain_exit(
        resource: Annotated[str, Depends(guarded, scope="function")], fail: bool = False
    ) -> Response:
        trace.append("endpoint")
        if fail:
            raise Refused()
        return JSONResponse({"resource": resource})

    @router.post("/body")
    async def body(value: Annotated[int, Body(embed=True)]) -> Response:
        return JSONResponse({"value": value})

    return router


@pytest.fixture
async def both(app: FastAPI, client: httpx.AsyncClient) -> httpx.AsyncClient:
    app.include_router(routes(APIRouter()), prefix="/t/plain")
    app.include_router(routes(APIRouter(route_class=DirectRoute)), prefix="/t/direct")
    return client


async def _same(client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> httpx.Response:
    trace.clear()
    plain = await client.request(method, "/t/plain" + path, **kw)
    plain_trace = list(trace)
    trace.clear()
    direct = await client.request(method, "/t/direct" + path, **kw)
    assert (direct.status_code, direct.json()) == (plain.status_code, plain.json()), path
    assert trace == plain_trace, path
    drop = {"x-request-id", "content-length"}
    assert {k: v for k, v in direct.headers.items() if k not in drop} == {
        k: v for k, v in plain.headers.items() if k not in drop
    }
    return direct


def test_the_hot_ticket_routes_are_planned() -> None:
    planned = {
        (method, route.path)  # type: ignore[attr-defined]
        for route in tickets_router.routes
        for method in getattr(route, "methods", ())
        if compile_plan(route.dependant) is not None  # type: ignore[attr-defined]
    }
    # The read-only ones close their session without FastAPI's shield (`unshielded`).
    by_key = {(m, r.path): r for r in tickets_router.routes for m in getattr(r, "methods", ())}  # type: ignore[attr-defined]
    for key in (("GET", "/tickets/my"), ("GET", "/tickets/my/{id}")):
        plan = compile_plan(by_key[key].dependant)  # type: ignore[attr-defined]
        assert plan is not None and plan.plain_exit, key
    assert {
        ("GET", "/tickets/my"),
        ("GET", "/tickets/my/{id}"),
        ("GET", "/tickets"),
        ("GET", "/tickets/{id}"),
    } <= planned
    # A body is FastAPI's to read and validate.
    assert ("POST", "/tickets/my") not in planned


def test_what_the_plan_does_not_cover_is_left_to_fastapi() -> None:
    router = routes(APIRouter(route_class=DirectRoute))
    by_path = {route.path: route for route in router.routes}
    assert compile_plan(by_path["/body"].dependant) is None  # type: ignore[attr-defined]

    @router.get("/sync")
    async def sync(value: Annotated[int, Depends(sync_dependency)]) -> Response:
        return JSONResponse({"value": value})

    assert compile_plan(router.routes[-1].dependant) is None  # type: ignore[attr-defined]


async def test_a_planned_route_answers_what_fastapi_answers(
    both: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    auth = person.auth
    ok = await _same(both, "GET", "/one/7?page=2", headers={**auth, "thing": "x"})
    assert ok.status_code == 200
    assert ok.json() == {"id": 7, "user": person.user.id, "page": 2, "thing": "x", "same": True}
    for path in ("/one/0", "/one/abc", "/one/7?page=0", "/one/7?page=x&limit=1000"):
        bad = await _same(both, "GET", path, headers=auth)
        assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"
    assert (await _same(both, "GET", "/one/7")).status_code == 401
    assert (
        await _same(both, "GET", "/one/7", headers={"Authorization": "Bearer x"})
    ).status_code == 401
    assert (await _same(both, "GET", "/refuse/3", headers=auth)).status_code == 409
    assert (await _same(both, "GET", "/refuse/0", headers=auth)).status_code == 400


async def test_dependencies_run_once_each_and_yield_ones_close_after_the_endpoint(
    both: httpx.AsyncClient,
) -> None:
    response = await _same(both, "GET", "/deps")
    assert response.json() == {"sum": 2, "resource": "resource", "first": 1}
    assert trace == ["counted", "open", "endpoint", "close"]


async def test_an_unshielded_route_closes_its_yield_dependency_as_fastapi_does(
    both: httpx.AsyncClient,
) -> None:
    """Entered into the function's exit stack without FastAPI's shield: still closed after
    the endpoint, before the response, and told of the endpoint's error."""
    assert (await _same(both, "GET", "/unshielded")).json() == {"resource": "resource"}
    assert trace == ["open", "endpoint", "close"]
    assert (await _same(both, "GET", "/unshielded?fail=true")).status_code == 409
    assert trace == ["open", "endpoint", "saw the refusal", "close"]
    by_path = {r.path: r for r in routes(APIRouter(route_class=DirectRoute)).routes}  # type: ignore[attr-defined]
    plan = compile_plan(by_path["/unshielded"].dependant)  # type: ignore[attr-defined]
    assert plan is not None and plan.plain_exit
    assert not compile_plan(by_path["/deps"].dependant).plain_exit  # type: ignore[attr-defined,union-attr]


async def test_a_body_route_on_a_direct_router_still_validates_its_body(
    both: httpx.AsyncClient,
) -> None:
    assert (await _same(both, "POST", "/body", json={"value": 3})).json() == {"value": 3}
    assert (await _same(both, "POST", "/body", json={"value": "x"})).status_code == 400
