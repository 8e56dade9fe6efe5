"""A ticket's answers may reference uploads of the person saving them: the reporter, or an
agent editing the ticket (contract, Uploads). The reporter can then download the agent's file."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import Person
from tests.uploads.conftest import PDF, PNG, uploaded

ELEMENTS: list[dict[str, Any]] = [
    {"type": "text-field", "id": "e1", "name": "title", "label": "Title", "required": True},
    {"type": "file-upload", "id": "e2", "name": "photo", "label": "Photo", "required": False},
    {"type": "file-upload", "id": "e3", "name": "invoice", "label": "Invoice", "required": False},
]


async def _form(client: httpx.AsyncClient, admin: Person) -> str:
    response = await client.post(
        "/api/forms",
        json={"name": "With files", "description": "", "elements": ELEMENTS},
        headers=admin.auth,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


async def test_agent_can_attach_own_upload_and_the_reporter_can_download_it(
    client: httpx.AsyncClient, uploader: Person, agent: Person, admin: Person, stranger: Person
) -> None:
    form_id = await _form(client, admin)
    mine = await uploaded(client, uploader, PNG, "screen.png")
    response = await client.post(
        "/api/tickets/my",
        json={
            "formId": form_id,
            "summary": "Broken screen",
            "formResponse": {"title": "Screen", "photo": mine},
        },
        headers=uploader.auth,
    )
    assert response.status_code == 200, response.text
    tid = response.json()["data"]["id"]

    theirs = await uploaded(client, agent, PDF, "invoice.pdf")
    # Before the agent saves it on the ticket, the reporter cannot read the agent's file.
    assert (await client.get(theirs["url"], headers=uploader.auth)).status_code == 404
    response = await client.patch(
        f"/api/tickets/{tid}",
        # The reporter's file stays valid in the agent's edit; the agent adds its own.
        json={"formResponse": {"title": "Screen", "photo": mine, "invoice": theirs["filename"]}},
        headers=agent.auth,
    )
    assert response.status_code == 200, response.text
    stored = response.json()["data"]["formResponse"]
    assert stored["photo"] == mine
    assert stored["invoice"] == theirs

    download = await client.get(theirs["url"], headers=uploader.auth)
    assert download.status_code == 200, download.text
    assert download.content == PDF
    assert (await client.get(theirs["url"], headers=stranger.auth)).status_code == 404


async def test_nobody_else_may_attach_someone_elses_upload(
    client: httpx.AsyncClient, uploader: Person, agent: Person, admin: Person, stranger: Person
) -> None:
    form_id = await _form(client, admin)
    response = await client.post(
        "/api/tickets/my",
        json={"formId": form_id, "summary": "s", "formResponse": {"title": "t"}},
        headers=uploader.auth,
    )
    tid = response.json()["data"]["id"]
    foreign = await uploaded(client, stranger, PNG)
    # Neither the agent (it is not the agent's upload) nor the reporter may reference it.
    response = await client.patch(
        f"/api/tickets/{tid}",
        json={"formResponse": {"title": "t", "photo": foreign["filename"]}},
        headers=agent.auth,
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_FORM_DATA"
    assert response.json()["errors"] == [{"field": "photo", "message": "Unknown upload"}]
    assert (await client.get(foreign["url"], headers=uploader.auth)).status_code == 404
