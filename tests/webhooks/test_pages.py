"""/admin/webhooks over HTTP: server-side validation messages, the secret shown once, the
unusual-port flag, enable/disable, test event, deliveries with retry, delete."""

from __future__ import annotations

import html

import httpx

from tekudasai.db.session import Database
from tekudasai.webhooks.models import Webhook
from tests.factories import Person
from tests.web.test_auth_reset_pages import HTML, csrf_of
from tests.webhooks.conftest import Receiver, deliveries


async def test_the_webhooks_page_flow(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    receiver: Receiver,
) -> None:
    client.cookies.set("tk.session_token", agent.token)
    assert (await client.get("/admin/webhooks", headers=HTML)).status_code == 404
    client.cookies.set("tk.session_token", admin.token)
    page = await client.get("/admin/webhooks", headers=HTML)
    assert page.status_code == 200 and "No webhooks yet" in page.text
    csrf = csrf_of(page)

    bad = await client.post(
        "/admin/webhooks",
        data={"url": "ftp://example.com/x", "events": [], "csrf_token": csrf},
        headers=HTML,
    )
    assert bad.status_code == 400
    assert "only http:// and https://" in bad.text and 'aria-invalid="true"' in bad.text
    assert 'value="ftp://example.com/x"' in bad.text  # what was typed stays
    no_events = await client.post(
        "/admin/webhooks", data={"url": receiver.url, "csrf_token": csrf}, headers=HTML
    )
    assert no_events.status_code == 400 and "choose at least one event" in no_events.text
    async with database.sessionmaker() as db:
        assert (await db.get(Webhook, "x")) is None

    made = await client.post(
        "/admin/webhooks",
        data={
            "url": receiver.url,
            "events": ["ticket.created", "comment.created"],
            "csrf_token": csrf,
        },
        headers=HTML,
    )
    assert made.status_code == 200, made.text
    assert "no-store" in made.headers["cache-control"]
    secret = made.text.split("<code data-new-secret>", 1)[1].split("<", 1)[0]
    assert secret.startswith("whsec_") and "shown only this once" in made.text
    assert "Unusual port" in made.text  # the receiver listens on an ephemeral port
    [hook] = (await client.get("/api/webhooks")).json()["data"]
    again = await client.get("/admin/webhooks", headers=HTML)
    assert secret not in again.text and html.escape(receiver.url) in again.text

    base = f"/admin/webhooks/{hook['id']}"
    toggled = await client.post(
        f"{base}/toggle", data={"csrf_token": csrf}, headers=HTML, follow_redirects=False
    )
    assert toggled.status_code == 303
    assert (await client.get(f"/api/webhooks/{hook['id']}")).json()["data"]["enabled"] is False
    tested = await client.post(
        f"{base}/test", data={"csrf_token": csrf}, headers=HTML, follow_redirects=False
    )
    assert tested.status_code == 303 and tested.headers["location"] == base
    [row] = await deliveries(database)
    assert row["event_type"] == "webhook.test" and row["status"] == "pending"
    log = await client.get(base, headers=HTML)
    assert log.status_code == 200 and "webhook.test" in log.text and "Pending" in log.text
    assert f"/deliveries/{row['id']}/retry" not in log.text  # pending: nothing to retry yet

    deleted = await client.post(
        f"{base}/delete", data={"csrf_token": csrf}, headers=HTML, follow_redirects=False
    )
    assert deleted.status_code == 303
    assert (await client.get("/api/webhooks")).json()["data"] == []
    assert (await client.get(base, headers=HTML)).status_code == 404
