"""The forms API over HTTP on real PostgreSQL: CRUD, roles, delete rules, versions, bad input."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import func, select

from tekudasai.db.session import Database
from tekudasai.forms import service
from tekudasai.forms.errors import InvalidFormData
from tekudasai.forms.models import Form, FormVersion
from tekudasai.tickets.models import Ticket
from tests.factories import Person
from tests.forms.conftest import create_form

TEXT = {"type": "text-field", "name": "title", "label": "Title", "required": True}
FORM_KEYS = {
    "id", "name", "description", "disabled", "elements", "hasTickets", "creatorId",
    "createdAt", "updatedAt", "version",
}  # fmt: skip


async def post_ascii_json(
    client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    """POST JSON with \\u escapes, so lone surrogates can be sent (httpx encodes UTF-8)."""
    return await client.post(
        path, content=json.dumps(body), headers={**headers, "Content-Type": "application/json"}
    )


async def count(database: Database, model: type) -> int:
    async with database.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def add_ticket(database: Database, reporter: Person, form_id: str, version: int) -> int:
    async with database.sessionmaker() as db, db.begin():
        ticket = Ticket(
            reporter_id=reporter.user.id,
            summary="Old ticket",
            form_id=form_id,
            form_version=version,
            form_response={"title": "short"},
        )
        db.add(ticket)
        await db.flush()
        return ticket.id


async def test_admin_creates_reads_and_lists(client: httpx.AsyncClient, admin: Person) -> None:
    form = await create_form(client, admin, [TEXT], name="Bug report", description="Bugs")
    assert set(form) == FORM_KEYS
    assert form["name"] == "Bug report" and form["version"] == 1
    assert form["hasTickets"] is False and form["disabled"] is False
    assert form["creatorId"] == admin.user.id and form["createdAt"].endswith("Z")
    assert form["elements"][0]["name"] == "title" and form["elements"][0]["id"]

    got = await client.get(f"/api/forms/{form['id']}", headers=admin.auth)
    assert got.status_code == 200 and got.json()["data"] == form

    await create_form(client, admin, [TEXT], name="Second", disabled=True)
    listed = (await client.get("/api/forms", headers=admin.auth)).json()
    assert [f["name"] for f in listed["data"]] == ["Second", "Bug report"]
    assert listed["meta"]["pagination"] == {"page": 1, "limit": 100, "total": 2, "totalPages": 1}
    paged = (await client.get("/api/v1/forms?page=2&limit=1", headers=admin.auth)).json()
    assert [f["name"] for f in paged["data"]] == ["Bug report"]
    assert paged["meta"]["pagination"]["total"] == 2
    beyond = (await client.get("/api/forms?page=9&limit=1", headers=admin.auth)).json()
    assert beyond["data"] == [] and beyond["meta"]["pagination"]["total"] == 2
    bad = await client.get("/api/forms?limit=0", headers=admin.auth)
    assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"


async def test_roles(
    client: httpx.AsyncClient, admin: Person, agent: Person, customer: Person
) -> None:
    enabled = await create_form(client, admin, [TEXT], name="Open")
    disabled = await create_form(client, admin, [TEXT], name="Closed", disabled=True)
    for person in (agent, customer):
        for method, path in (
            ("GET", "/api/forms"),
            ("POST", "/api/forms"),
            ("GET", f"/api/forms/{enabled['id']}"),
            ("PATCH", f"/api/forms/{enabled['id']}"),
            ("DELETE", f"/api/forms/{disabled['id']}"),
        ):
            response = await client.request(method, path, headers=person.auth, json={})
            assert response.status_code == 404, (method, path)
            assert response.json()["code"] == "NOT_FOUND"
        listed = (await client.get("/api/forms/enabled", headers=person.auth)).json()
        assert [f["name"] for f in listed["data"]] == ["Open"]
        one = await client.get(f"/api/forms/enabled/{enabled['id']}", headers=person.auth)
        assert one.status_code == 200 and one.json()["data"]["name"] == "Open"
        hidden = await client.get(f"/api/forms/enabled/{disabled['id']}", headers=person.auth)
        assert hidden.status_code == 404 and hidden.json()["code"] == "NOT_FOUND"
    anonymous = await client.get("/api/forms/enabled")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "UNAUTHORIZED"
    assert await count_forms(client, admin) == 2


async def count_forms(client: httpx.AsyncClient, admin: Person) -> int:
    listed = (await client.get("/api/forms", headers=admin.auth)).json()
    return int(listed["meta"]["pagination"]["total"])


async def test_patch_versions_and_disable(
    client: httpx.AsyncClient, admin: Person, database: Database
) -> None:
    form = await create_form(client, admin, [TEXT])
    path = f"/api/forms/{form['id']}"
    disabled = (await client.patch(path, json={"disabled": True}, headers=admin.auth)).json()
    assert disabled["data"]["disabled"] is True and disabled["data"]["version"] == 1
    same = (await client.patch(path, json={"name": "Form"}, headers=admin.auth)).json()
    assert same["data"]["version"] == 1  # nothing in the definition changed
    renamed = (await client.patch(path, json={"name": "Renamed"}, headers=admin.auth)).json()
    assert renamed["data"]["name"] == "Renamed" and renamed["data"]["version"] == 2
    new_elements = [{**TEXT, "maxLength": 3}]
    edited = await client.patch(
        path, json={"elements": new_elements, "disabled": False}, headers=admin.auth
    )
    assert edited.status_code == 200
    data = edited.json()["data"]
    assert data["version"] == 3 and data["disabled"] is False
    assert data["elements"][0]["maxLength"] == 3
    async with database.sessionmaker() as db:
        versions = (
            await db.scalars(
                select(FormVersion)
                .where(FormVersion.form_id == form["id"])
                .order_by(FormVersion.version)
            )
        ).all()
    assert [(v.version, v.name) for v in versions] == [(1, "Form"), (2, "Renamed"), (3, "Renamed")]
    assert versions[2].created_by == admin.user.id
    for body in ({"name": None}, {"name": "  "}, {"elements": None}, {"id": "another"}):
        bad = await client.patch(path, json=body, headers=admin.auth)
        assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR", body
    missing = await client.patch("/api/forms/nope", json={"name": "x"}, headers=admin.auth)
    assert missing.status_code == 404


async def test_delete_rules(
    client: httpx.AsyncClient, admin: Person, customer: Person, database: Database
) -> None:
    used = await create_form(client, admin, [TEXT])
    unused = await create_form(client, admin, [TEXT])
    await add_ticket(database, customer, used["id"], 1)
    listed = (await client.get("/api/forms", headers=admin.auth)).json()["data"]
    assert {f["id"]: f["hasTickets"] for f in listed} == {used["id"]: True, unused["id"]: False}

    enabled = await client.delete(f"/api/forms/{unused['id']}", headers=admin.auth)
    assert enabled.status_code == 400 and enabled.json()["code"] == "FORM_NOT_DISABLED"
    for form in (used, unused):
        await client.patch(f"/api/forms/{form['id']}", json={"disabled": True}, headers=admin.auth)
    has = await client.delete(f"/api/forms/{used['id']}", headers=admin.auth)
    assert has.status_code == 400 and has.json()["code"] == "FORM_HAS_TICKETS"
    deleted = await client.delete(f"/api/forms/{unused['id']}", headers=admin.auth)
    assert deleted.status_code == 200 and deleted.json()["data"]["id"] == unused["id"]
    again = await client.delete(f"/api/forms/{unused['id']}", headers=admin.auth)
    assert again.status_code == 404
    assert await count(database, Form) == 1
    assert await count(database, FormVersion) == 1


async def test_bad_definitions_store_nothing(
    client: httpx.AsyncClient, admin: Person, database: Database
) -> None:
    cases: list[tuple[list[Any], str, str]] = [
        ([{"type": "spreadsheet", "name": "x"}], "elements[0]", "unknown element type"),
        ([TEXT, {**TEXT, "label": "Again"}], "elements[1].name", "duplicate name 'title'"),
        ([{**TEXT, "minLength": 9, "maxLength": 2}], "elements[0].minLength", "maxLength"),
        ([{**TEXT, "pattern": "(unclosed"}], "elements[0].pattern", "not a valid regular"),
        (
            [{"type": "dropdown", "name": "d", "options": [{"label": "A", "value": "a"}] * 2}],
            "elements[0].options",
            "unique",
        ),
        ([{**TEXT, "showIf": {"field": "title", "op": "filled"}}], "elements[0].showIf", "earlier"),
        ([{**TEXT, "label": "nul\x00"}], "elements[0].label", "NUL"),
        ([{**TEXT, "placeholder": "\ud800"}], "elements[0].placeholder", "broken Unicode"),
    ]
    for elements, field, message in cases:
        response = await post_ascii_json(
            client, "/api/forms", {"name": "Bad", "elements": elements}, admin.auth
        )
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "VALIDATION_ERROR"
        assert body["errors"][0]["field"] == field and message in body["errors"][0]["message"]
    form = await create_form(client, admin, [TEXT])
    patched = await client.patch(
        f"/api/forms/{form['id']}",
        json={"name": "Changed", "elements": [{"type": "nope"}]},
        headers=admin.auth,
    )
    assert patched.status_code == 400
    for body in (
        {"elements": []},
        {"name": "", "elements": []},
        {"name": "x", "elements": 5},
        {"name": "x\x00", "elements": []},
        {"name": "x", "description": "\udfff", "elements": []},
    ):
        bad = await post_ascii_json(client, "/api/forms", body, admin.auth)
        assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR", body
    assert await count(database, Form) == 1
    assert await count(database, FormVersion) == 1
    unchanged = (await client.get(f"/api/forms/{form['id']}", headers=admin.auth)).json()
    assert unchanged["data"]["name"] == "Form" and unchanged["data"]["version"] == 1


async def test_text_panel_markdown_is_sanitised(
    client: httpx.AsyncClient, admin: Person, customer: Person
) -> None:
    content = "**Read** <script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=y>"
    form = await create_form(client, admin, [{"type": "text-panel", "content": content}, TEXT])
    got = await client.get(f"/api/forms/enabled/{form['id']}", headers=customer.auth)
    panel = got.json()["data"]["elements"][0]
    assert panel["content"] == content
    html = panel["contentHtml"]
    assert "<strong>Read</strong>" in html
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html


async def test_validate_endpoint_reports_each_bad_answer(
    client: httpx.AsyncClient, admin: Person, customer: Person
) -> None:
    elements = [
        {**TEXT, "maxLength": 5},
        {"type": "text-field", "name": "mail", "label": "Mail", "format": "email"},
        {
            "type": "dropdown",
            "name": "kind",
            "label": "Kind",
            "options": [{"label": "Bug", "value": "bug"}, {"label": "Idea", "value": "idea"}],
        },
        {"type": "number", "name": "qty", "label": "Qty", "min": 1, "max": 10},
        {"type": "file-upload", "name": "shot", "label": "Shot"},
    ]
    form = await create_form(client, admin, elements)
    path = f"/api/forms/enabled/{form['id']}/validate"
    good = await client.post(
        path,
        json={"formResponse": {"title": "ok", "mail": "a@corp", "kind": "bug", "qty": 3, "x": 1}},
        headers=customer.auth,
    )
    assert good.status_code == 200
    assert good.json()["data"]["formResponse"] == {
        "title": "ok",
        "mail": "a@corp",
        "kind": "bug",
        "qty": 3,
        "shot": "",  # unanswered: a blank, never a missing key
    }
    bad = await client.post(
        path,
        json={
            "formResponse": {
                "title": "too long",
                "mail": "not an e-mail",
                "kind": "question",
                "qty": 11,
                "shot": "../../etc/passwd",
            }
        },
        headers=customer.auth,
    )
    assert bad.status_code == 400
    body = bad.json()
    assert body["code"] == "INVALID_FORM_DATA"
    assert {e["field"]: e["message"] for e in body["errors"]} == {
        "title": "Must be at most 5 characters",
        "mail": "Must be a valid e-mail address",
        "kind": "Must be one of the options",
        "qty": "Must be at most 10",
        "shot": "Must be an uploaded file",
    }
    unstorable = await post_ascii_json(
        client, path, {"formResponse": {"title": "a\x00b", "mail": "\ud800@corp"}}, customer.auth
    )
    assert unstorable.status_code == 400
    assert {e["field"] for e in unstorable.json()["errors"]} == {"title", "mail"}


async def test_old_ticket_keeps_its_definition(
    client: httpx.AsyncClient, admin: Person, customer: Person, database: Database
) -> None:
    form = await create_form(client, admin, [{**TEXT, "maxLength": 10}], name="v1")
    ticket_id = await add_ticket(database, customer, form["id"], 1)
    stricter = [
        {**TEXT, "maxLength": 3},
        {"type": "checkbox", "name": "agree", "label": "Agree", "required": True},
    ]
    edited = await client.patch(
        f"/api/forms/{form['id']}", json={"name": "v2", "elements": stricter}, headers=admin.auth
    )
    assert edited.json()["data"]["version"] == 2
    async with database.sessionmaker() as db:
        ticket = await db.get(Ticket, ticket_id)
        assert ticket is not None
        current = await service.get_enabled_form(db, form_id=form["id"])
        old = await service.get_form_version(db, form_id=form["id"], version=ticket.form_version)
        view = service.form_view(current, old, has_tickets=True)
        assert view["name"] == "v1" and view["version"] == 1
        assert [e["name"] for e in view["elements"]] == ["title"]
        assert view["elements"][0]["maxLength"] == 10
        values, _ = await service.validate_for_ticket(
            db,
            plan=service.plan_of(old),
            response=ticket.form_response,
            reporter_id=customer.user.id,
        )
        assert values == {"title": "short"}
        new = await service.current_version(db, form=current)
        try:
            await service.validate_for_ticket(
                db,
                plan=service.plan_of(new),
                response=ticket.form_response,
                reporter_id=customer.user.id,
            )
        except InvalidFormData as exc:
            assert {e["field"] for e in exc.errors or []} == {"title", "agree"}
        else:
            raise AssertionError("the new version should reject the old answers")


async def test_every_type_rule_and_show_if_operator_over_http(
    client: httpx.AsyncClient, admin: Person, customer: Person
) -> None:
    from tests.forms.test_engine import ALL_LOGIC, ALL_TYPES, LOGIC

    form = await create_form(client, admin, ALL_TYPES + LOGIC)
    assert {e["type"] for e in form["elements"]} == {
        "text-panel", "text-field", "textarea", "dropdown", "file-upload", "number", "date",
        "checkbox", "radio", "multi-select",
    }  # fmt: skip
    path = f"/api/forms/enabled/{form['id']}/validate"

    async def check(response: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        answer = await client.post(path, json={"formResponse": response}, headers=customer.auth)
        body = answer.json()
        if answer.status_code == 200:
            return 200, body["data"]["formResponse"], {}
        assert body["code"] == "INVALID_FORM_DATA"
        return answer.status_code, {}, {e["field"]: e["message"] for e in body["errors"]}

    base = {"title": "t", "ok": True, "kind": "bug", "eq": "no", "notIn": "x", "filled": "x"}
    status, values, _ = await check(
        {**base, "mail": "x@corp", "body": "long enough", "cat": "a", "qty": "4",
         "when": "2026-12-31", "size": "s", "tags": ["y"], "intro": "dropped", "other": 1}
    )  # fmt: skip
    assert status == 200
    assert values == {
        "title": "t", "mail": "x@corp", "body": "long enough", "cat": "a", "qty": 4,
        "when": "2026-12-31", "ok": True, "size": "s", "tags": ["y"], "kind": "bug", "eq": "no",
        "notIn": "x", "filled": "x",
        # Unanswered and hidden inputs are kept as blanks (contract: "Stored answers").
        "file": "", "neq": "", "in": "", "empty": "", "areas": "", "urgent": "", "api": "",
        "urgentWhy": "", "chained": "",
    }  # fmt: skip
    bad = {
        "title": ("x" * 11, "Must be at most 10 characters"),
        "mail": ("nope", "Must be a valid e-mail address"),
        "body": ("ab", "Must be at least 3 characters"),
        "cat": ("zzz", "Must be one of the options"),
        "qty": (99, "Must be at most 5"),
        "when": ("31/12/2026", "Must be a date (YYYY-MM-DD)"),
        "ok": (False, "Must be checked"),
        "size": ("xl", "Must be one of the options"),
        "tags": (["nope"], "Must contain only the options"),
        "file": ("../etc/passwd", "Must be an uploaded file"),
    }
    status, _, errors = await check({**base, **{k: v[0] for k, v in bad.items()}})
    assert status == 400 and errors == {k: v[1] for k, v in bad.items()}
    # showIf: each operator decides which questions count (hidden ones are dropped).
    for answers, visible in (
        ({"kind": "bug"}, {"eq", "notIn", "filled", "chained"}),
        ({"kind": "idea"}, {"neq", "in", "filled"}),
        ({}, {"neq", "notIn", "empty"}),
        ({"areas": ["api"], "urgent": True}, {"neq", "notIn", "empty", "api", "urgentWhy"}),
    ):
        status, values, errors = await check({"title": "t", "ok": True, **answers, **ALL_LOGIC})
        assert status == 200, errors
        assert set(ALL_LOGIC) <= set(values)  # hidden ones too, as blanks
        assert {k for k in values if k in ALL_LOGIC and values[k] != ""} == visible
