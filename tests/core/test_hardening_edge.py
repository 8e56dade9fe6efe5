"""The request edge (issue 12): bad input is a 400 (never a 500), body limits by route, and
database errors mapped below the catch-all."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from tekudasai.db.session import Database, DbSession
from tekudasai.monitoring import metrics
from tests.factories import Person, make_form, make_person

JSON = {"Content-Type": "application/json"}
SURROGATE = '"\\ud800"'  # a lone surrogate, as a JSON escape (json.dumps cannot write it)
ELEMENTS = [{"type": "textarea", "name": "details", "label": "Details", "required": False}]


@pytest.fixture
async def reporter(database: Database, cipher: Any) -> Person:
    return await make_person(database, cipher, role="user")


@pytest.fixture
async def admin(database: Database, cipher: Any) -> Person:
    return await make_person(database, cipher, role="admin")


@pytest.fixture
async def form_id(database: Database, admin: Person) -> str:
    form = await make_form(database, admin, name="General", elements=ELEMENTS)
    return str(form["id"])


async def file_ticket(client: httpx.AsyncClient, person: Person, form_id: str) -> int:
    response = await client.post(
        "/api/tickets/my",
        json={"formId": form_id, "summary": "Printer", "formResponse": {"details": "x"}},
        headers=person.auth,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["id"])


def error_count(code: str) -> float:
    value = metrics.REGISTRY.get_sample_value("tk_errors_total", {"code": code})
    return value or 0.0


async def test_nul_in_query_is_a_validation_error_counted_as_400(
    client: httpx.AsyncClient, reporter: Person
) -> None:
    unexpected = error_count("UNEXPECTED_ERROR")
    response = await client.get("/api/tickets/my?search=%00", headers=reporter.auth)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["errors"][0]["field"] == "search"
    assert error_count("UNEXPECTED_ERROR") == unexpected
    assert (await client.get("/api/tickets/my?search=ok", headers=reporter.auth)).status_code == 200


async def test_tampered_cursor_is_a_400(client: httpx.AsyncClient, reporter: Person) -> None:
    # base64 of "t1:²": str.isdigit() accepts the superscript two, int() does not.
    response = await client.get("/api/tickets/my?cursor=dDE6wrI", headers=reporter.auth)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"


async def test_lone_surrogate_in_summary_comment_and_agent_patch_is_a_400(
    client: httpx.AsyncClient, database: Database, cipher: Any, reporter: Person, form_id: str
) -> None:
    body = f'{{"formId": "{form_id}", "summary": {SURROGATE}, "formResponse": {{"details": "x"}}}}'
    created = await client.post("/api/tickets/my", content=body, headers={**JSON, **reporter.auth})
    assert created.status_code == 400, created.text
    assert created.json()["code"] == "VALIDATION_ERROR"
    assert created.json()["errors"][0]["field"] == "summary"

    ticket_id = await file_ticket(client, reporter, form_id)
    comment = await client.post(
        f"/api/tickets/my/{ticket_id}/comments",
        content=f'{{"body": {SURROGATE}}}',
        headers={**JSON, **reporter.auth},
    )
    assert comment.status_code == 400, comment.text
    assert comment.json()["code"] == "VALIDATION_ERROR"

    agent = await make_person(database, cipher, role="agent")
    patched = await client.patch(
        f"/api/tickets/{ticket_id}",
        content='{"summary": "ok \\udfff"}',
        headers={**JSON, **agent.auth},
    )
    assert patched.status_code == 400, patched.text
    assert patched.json()["code"] == "VALIDATION_ERROR"
    # A surrogate pair is ordinary text (an emoji) and is stored.
    emoji = await client.patch(
        f"/api/tickets/{ticket_id}",
        content='{"summary": "ok \\ud83d\\ude00"}',
        headers={**JSON, **agent.auth},
    )
    assert emoji.status_code == 200, emoji.text
    assert emoji.json()["data"]["summary"] == "ok \U0001f600"


async def test_lone_surrogate_in_form_answers_is_invalid_form_data(
    client: httpx.AsyncClient, reporter: Person, form_id: str
) -> None:
    body = f'{{"formId": "{form_id}", "summary": "s", "formResponse": {{"details": {SURROGATE}}}}}'
    response = await client.post("/api/tickets/my", content=body, headers={**JSON, **reporter.auth})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_FORM_DATA"
    assert response.json()["errors"][0]["field"] == "details"


async def test_deeply_nested_json_is_a_400_on_any_route(
    client: httpx.AsyncClient, admin: Person, reporter: Person
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for path, person in (("/api/forms", admin), ("/api/tickets/my", reporter)):
        response = await client.post(
            path,
            content=f'{{"name": "x", "elements": {deep}}}',
            headers={**JSON, **person.auth},
        )
        assert response.status_code == 400, (path, response.text[:200])
        assert response.json()["code"] == "VALIDATION_ERROR"


def test_json_depth_counts_brackets_outside_strings() -> None:
    from tekudasai.core.middleware import MAX_JSON_DEPTH, json_depth

    # Ordinary bodies nest a few levels; brackets inside strings do not count.
    assert json_depth(b'{"a": [{"b": "[[[[[[[["}]}') == 3
    assert json_depth(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)) > MAX_JSON_DEPTH


async def test_multipart_boundary_over_256_characters_is_a_400(
    client: httpx.AsyncClient, reporter: Person
) -> None:
    boundary = "b" * 300
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    ).encode()
    response = await client.post(
        "/api/uploads",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **reporter.auth},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"


async def test_multipart_content_type_does_not_lift_the_json_limit(
    client: httpx.AsyncClient, reporter: Person, form_id: str
) -> None:
    body = b"x" * (2 * 1024 * 1024)
    for kind in ("multipart/form-data; boundary=x", "multipart/mixed", "text/plain"):
        response = await client.post(
            "/api/tickets/my", content=body, headers={"Content-Type": kind, **reporter.auth}
        )
        assert response.status_code == 413, kind
        assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    # The upload endpoint keeps its own (larger) cap.
    upload = await client.post(
        "/api/uploads",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=x", **reporter.auth},
    )
    assert upload.status_code != 413


async def test_web_form_builder_refuses_deeply_nested_elements(
    client: httpx.AsyncClient, database: Database, admin: Person
) -> None:
    client.cookies.set("tk.session_token", admin.token)
    page = await client.get("/agent/forms/new", headers={"Accept": "text/html"})
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    deep = "[" * 100_000 + "]" * 100_000
    response = await client.post(
        "/agent/forms/new",
        data={"name": "Deep", "elements": deep, "csrf_token": token},
        headers={"Accept": "text/html"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    async with database.sessionmaker() as db:
        assert await db.scalar(text("SELECT count(*) FROM forms WHERE name = 'Deep'")) == 0


probe = APIRouter(prefix="/api/_edge_probe")


@probe.get("/nul")
async def store_nul(db: DbSession) -> dict[str, object]:
    # Text only the database refuses (the edge never saw it: it is made here).
    await db.execute(text("SELECT CAST(:value AS text)"), {"value": "a\x00b"})
    return {"status": "success"}


async def test_database_text_error_maps_to_400_without_the_catch_all(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    app.include_router(probe)
    unexpected = error_count("UNEXPECTED_ERROR")
    response = await client.get("/api/_edge_probe/nul")
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert error_count("UNEXPECTED_ERROR") == unexpected
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_nul_in_a_path_parameter_is_a_400(
    client: httpx.AsyncClient, reporter: Person
) -> None:
    response = await client.get("/api/forms/enabled/x%00y", headers=reporter.auth)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


async def test_nul_in_a_web_form_post_is_a_400_page(
    client: httpx.AsyncClient, database: Database, admin: Person
) -> None:
    client.cookies.set("tk.session_token", admin.token)
    page = await client.get("/agent/forms/new", headers={"Accept": "text/html"})
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = await client.post(
        "/agent/forms/new",
        data={"name": "Nul\x00Form", "elements": "[]", "csrf_token": token},
        headers={"Accept": "text/html"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
