"""The OpenAPI document says what every API route answers, and the real answers match it."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import jsonschema
import pytest

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.factories import Person, make_person
from tests.tickets.conftest import GOOD_RESPONSE, make_form

METHODS = {"get", "post", "put", "patch", "delete"}


async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


async def test_every_operation_documents_what_it_answers(client: httpx.AsyncClient) -> None:
    doc = await document(client)
    undocumented, errors_undocumented, fastapi_422 = [], [], []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            responses = operation["responses"]
            success = [r for code, r in responses.items() if code.startswith("2")]
            redirect_only = not success and any(code.startswith("3") for code in responses)
            if not redirect_only and not any(
                "schema" in media for r in success for media in r.get("content", {}).values()
            ):
                undocumented.append(f"{method.upper()} {path}")
            error = responses.get("4XX", {}).get("content", {}).get("application/json", {})
            if error.get("schema") != {"$ref": "#/components/schemas/ErrorEnvelope"}:
                errors_undocumented.append(f"{method.upper()} {path}")
            if "422" in responses:  # invalid input answers 400 VALIDATION_ERROR here
                fastapi_422.append(f"{method.upper()} {path}")
    assert len(doc["paths"]) > 30
    assert not undocumented, f"no 2xx response schema: {undocumented}"
    assert not errors_undocumented, f"no error envelope for 4xx: {errors_undocumented}"
    assert not fastapi_422, f"422 documented but never answered: {fastapi_422}"


def _closed(schema: Any) -> Any:
    """The schema with every object closed to members it does not list, so a member the
    document forgot fails the check instead of slipping through."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


def check(doc: dict[str, Any], path: str, method: str, response: httpx.Response) -> None:
    """Validate the real body against the document's schema for that status."""
    responses = doc["paths"][path][method]["responses"]
    status = str(response.status_code)
    documented = responses.get(status) or responses[f"{status[0]}XX"]
    schema = documented["content"]["application/json"]["schema"]
    root = {**copy.deepcopy(schema), "components": _closed(doc["components"])}
    try:
        jsonschema.Draft202012Validator(root).validate(response.json())
    except jsonschema.ValidationError as error:
        pytest.fail(f"{method.upper()} {path} {status}: {error.message} at {list(error.path)}")


async def test_real_answers_match_the_document(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    doc = await document(client)
    admin = await make_person(database, cipher, role="admin")
    agent = await make_person(database, cipher, role="agent")
    customer = await make_person(database, cipher)
    form = await make_form(database, form_id="it-support")

    async def call(
        method: str, template: str, person: Person | None = None, **kwargs: Any
    ) -> httpx.Response:
        url = template.format(**kwargs.pop("path", {}))
        headers = person.auth if person else {}
        response = await client.request(method, url, headers=headers, **kwargs)
        check(doc, template, method.lower(), response)
        return response

    # Auth (better-auth's shapes) and its errors.
    signed_up = await call(
        "POST",
        "/api/auth/signup",
        json={"name": "Ann Example", "email": "ann@example.test", "password": "long-enough-1"},
    )
    assert signed_up.status_code == 200
    signin_body = {"email": customer.email, "password": customer.password}
    assert (await call("POST", "/api/auth/signin", json=signin_body)).status_code == 200
    wrong = {"email": customer.email, "password": "not-the-password"}
    assert (await call("POST", "/api/auth/signin", json=wrong)).status_code == 401
    assert (await call("GET", "/api/auth/session", customer)).json()["user"]["id"]
    client.cookies.clear()  # signed out again: the bearer token is all the calls below carry
    assert (await call("GET", "/api/auth/session")).json() is None
    await call("GET", "/api/auth/providers")
    await call("GET", "/api/users", admin)
    await call("GET", "/api/health")

    # Forms.
    await call("GET", "/api/forms/enabled", customer)
    await call("GET", "/api/forms/enabled/{form_id}", customer, path={"form_id": form.id})
    missing = await call("GET", "/api/forms/enabled/{form_id}", customer, path={"form_id": "no"})
    assert missing.status_code == 404
    await call("GET", "/api/forms", admin)

    # Uploads.
    uploaded = await call(
        "POST",
        "/api/uploads",
        customer,
        files={"file": ("notes.txt", b"plain words\n", "text/plain")},
    )
    upload = uploaded.json()["data"]

    # Tickets: the reporter's side.
    body = {
        "formId": form.id,
        "summary": "Printer",
        "formResponse": {**GOOD_RESPONSE},
    }
    created = await call("POST", "/api/tickets/my", customer, json=body)
    ticket = {"id": created.json()["data"]["id"]}
    bad = await call("POST", "/api/tickets/my", customer, json={**body, "formResponse": {}})
    assert bad.status_code == 400 and bad.json()["errors"]
    await call("GET", "/api/tickets/my", customer)
    await call("GET", "/api/tickets/my", customer, params={"cursor": ""})
    await call("GET", "/api/tickets/my", customer, params={"q": "printer"})
    await call("GET", "/api/tickets/my/{id}", customer, path=ticket)
    await call("POST", "/api/tickets/my/{id}/comments", customer, path=ticket, json={"body": "Hi"})
    await call("GET", "/api/tickets/my/{id}/comments", customer, path=ticket)
    await call("GET", "/api/tickets/my/{id}/logs", customer, path=ticket)

    # Tickets: agents.
    await call("GET", "/api/tickets", agent)
    await call("GET", "/api/tickets/{id}", agent, path=ticket)
    await call("PATCH", "/api/tickets/{id}", agent, path=ticket, json={"status": "in_progress"})
    await call("POST", "/api/tickets/{id}/assign-toggle", agent, path=ticket)
    await call(
        "POST",
        "/api/tickets/{id}/comments",
        agent,
        path=ticket,
        json={"body": "x", "internal": True},
    )
    await call("GET", "/api/tickets/{id}/comments", agent, path=ticket)
    await call("GET", "/api/tickets/{id}/logs", agent, path=ticket)
    await call("POST", "/api/tickets/{id}/open-form", agent, path=ticket)
    await call(
        "PATCH",
        "/api/tickets/my/{id}",
        customer,
        path=ticket,
        json={"formResponse": GOOD_RESPONSE},
    )
    assert (await call("GET", "/api/tickets/{id}", customer, path=ticket)).status_code == 404
    await call("DELETE", "/api/tickets/{id}", agent, path=ticket)
    assert upload["filename"]
