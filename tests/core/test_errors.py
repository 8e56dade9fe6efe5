"""Every error path answers the contract's envelope: never a stack trace, never a bare 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel

from tekudasai.core.errors import NotFound
from tekudasai.core.schemas import PageParams, page_params

probe = APIRouter(prefix="/api/_probe")


class Body(BaseModel):
    name: str
    count: int


@probe.post("/echo")
async def echo(body: Body) -> dict[str, object]:
    return {"status": "success", "data": body.model_dump()}


@probe.get("/paged")
async def paged(params: Annotated[PageParams, Depends(page_params)]) -> dict[str, int]:
    return {"page": params.page}


@probe.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals: SELECT * FROM users")


@probe.get("/missing")
async def missing() -> None:
    raise NotFound("No such thing.")


@pytest.fixture
async def probe_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    app.include_router(probe)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        yield http


async def test_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "success"}
    assert response.headers["x-request-id"]


async def test_v1_prefix_serves_the_same_api(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/health")).json() == {"status": "success"}


async def test_unknown_api_path_is_enveloped_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/does-not-exist")
    assert response.status_code == 404
    assert response.json() == {"status": "error", "message": "Not found.", "code": "NOT_FOUND"}


async def test_wrong_method_is_enveloped_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/health")
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_invalid_json_body_is_a_validation_error(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/api/_probe/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["errors"]


async def test_wrong_types_name_the_field(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/api/_probe/echo", json={"name": "x", "count": "many"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "count"


async def test_pagination_out_of_range_is_400(probe_client: httpx.AsyncClient) -> None:
    for query in ("limit=101", "limit=0", "page=0", "page=abc"):
        response = await probe_client.get(f"/api/_probe/paged?{query}")
        assert response.status_code == 400, query
        assert response.json()["code"] == "VALIDATION_ERROR"
    assert (await probe_client.get("/api/_probe/paged?page=3&limit=100")).json() == {"page": 3}


async def test_unexpected_error_hides_internals(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/api/_probe/boom")
    assert response.status_code == 500
    assert response.json() == {
        "status": "error",
        "message": "An unexpected error occurred.",
        "code": "UNEXPECTED_ERROR",
    }
    assert "SELECT" not in response.text


async def test_domain_error_uses_its_code(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/api/_probe/missing")
    assert response.status_code == 404
    assert response.json()["message"] == "No such thing."


async def test_json_body_over_one_mib_is_413(probe_client: httpx.AsyncClient) -> None:
    big = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'", "count": 1}'
    response = await probe_client.post(
        "/api/_probe/echo", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


async def test_streamed_body_over_limit_without_length_is_413(
    probe_client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'", "count": 1}'

    response = await probe_client.post(
        "/api/_probe/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


async def test_page_requests_get_html_errors(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-page", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
