"""/settings/tokens over real HTTP: create (shown once), use, revoke; CSRF-protected posts."""

from __future__ import annotations

import httpx

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.factories import make_person
from tests.web.test_auth_reset_pages import HTML, csrf_of


async def test_create_use_and_revoke_a_token_from_the_page(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    client.cookies.set("tk.session_token", person.token)
    page = await client.get("/settings/tokens", headers=HTML)
    assert page.status_code == 200 and "No tokens yet" in page.text

    refused = await client.post(
        "/settings/tokens", data={"name": "ci", "scopes": "tickets:read"}, headers=HTML
    )
    assert refused.status_code == 303  # no CSRF token: sent back, nothing made
    assert (await client.get("/api/me/tokens")).json() == []
    bad = await client.post(
        "/settings/tokens",
        data={
            "name": "ci",
            "scopes": "tickets:read",
            "expires_in_days": "0",
            "csrf_token": csrf_of(page),
        },
        headers=HTML,
    )
    assert bad.status_code == 400 and "3650" in bad.text

    made = await client.post(
        "/settings/tokens",
        data={"name": "ci", "scopes": ["tickets:read", "forms:read"], "csrf_token": csrf_of(page)},
        headers=HTML,
    )
    assert made.status_code == 200
    token = made.text.split("<code data-new-token>", 1)[1].split("<", 1)[0]
    assert token.startswith("tkp_") and "shown only this once" in made.text

    client.cookies.clear()
    used = await client.get("/api/tickets/my", headers={"Authorization": f"Bearer {token}"})
    assert used.status_code == 200
    client.cookies.set("tk.session_token", person.token)
    again = await client.get("/settings/tokens", headers=HTML)
    assert token not in again.text and "ci" in again.text and "Never" in again.text
    token_id = (await client.get("/api/me/tokens")).json()[0]["id"]

    revoked = await client.post(
        f"/settings/tokens/{token_id}/revoke",
        data={"csrf_token": csrf_of(again)},
        headers=HTML,
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    client.cookies.clear()
    gone = await client.get("/api/tickets/my", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401
