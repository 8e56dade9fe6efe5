"""Web pages: /settings/notifications (CSRF-protected form), /notifications (the feed) and the
unread badge in the header."""

from __future__ import annotations

import re

import httpx

from tekudasai.jobs.worker import Worker
from tests.factories import Person
from tests.notifications.conftest import FileTicket, Mailbox
from tests.web.test_auth_reset_pages import HTML, csrf_of


def badge(page: httpx.Response) -> int:
    found = re.search(r'href="/notifications" data-unread="(\d+)"', page.text)
    assert found, "no notifications link in the header"
    return int(found.group(1))


async def test_settings_page_shows_and_saves_the_switches(
    client: httpx.AsyncClient, agent: Person, reporter: Person
) -> None:
    client.cookies.set("tk.session_token", reporter.token)
    page = await client.get("/settings/notifications", headers=HTML)
    assert page.status_code == 200
    assert page.text.count('type="checkbox" name="email"') == 3  # a customer's three
    assert 'value="assigned"' not in page.text

    client.cookies.set("tk.session_token", agent.token)
    page = await client.get("/settings/notifications", headers=HTML)
    assert page.text.count('type="checkbox" name="email"') == 7
    assert 'value="newTicketForAgents">' in page.text  # off by default: not checked

    refused = await client.post(
        "/settings/notifications", data={"email": ["assigned"]}, headers=HTML
    )
    assert refused.status_code == 303  # no CSRF token: sent back, nothing saved
    prefs = (await client.get("/api/me/notifications", headers=agent.auth)).json()["data"]
    assert prefs["email"]["agentReply"] is True

    saved = await client.post(
        "/settings/notifications",
        data={"email": ["assigned", "newTicketForAgents"], "csrf_token": csrf_of(page)},
        headers=HTML,
        follow_redirects=False,
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/settings/notifications"
    prefs = (await client.get("/api/me/notifications", headers=agent.auth)).json()["data"]
    assert prefs["email"] == {
        "ticketCreated": False,
        "agentReply": False,
        "statusChanged": False,
        "customerReply": False,
        "assigned": True,
        "internalNote": False,
        "newTicketForAgents": True,
    }
    after = await client.get("/settings/notifications", headers=HTML)
    assert "Notification settings saved." in after.text
    assert 'value="newTicketForAgents" checked' in after.text

    wrong = await client.post(
        "/settings/notifications",
        data={"email": ["smsEverything"], "csrf_token": csrf_of(page)},
        headers=HTML,
    )
    assert wrong.status_code == 400 and "Unknown setting" in wrong.text


async def test_feed_page_and_the_unread_badge(
    client: httpx.AsyncClient,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
) -> None:
    client.cookies.set("tk.session_token", reporter.token)
    empty = await client.get("/notifications", headers=HTML)
    assert empty.status_code == 200 and "No notifications yet" in empty.text
    assert badge(empty) == 0 and "unread</span>" not in empty.text

    ticket = await file_ticket(reporter, summary="Coffee <machine>")
    reply = {"body": "On our way"}
    path = f"/api/tickets/{ticket['id']}/comments"
    assert (await client.post(path, json=reply, headers=agent.auth)).is_success
    await worker.run_pending()

    home = await client.get("/", headers=HTML)
    assert badge(home) == 2 and '2<span class="visually-hidden"> unread</span>' in home.text
    feed = await client.get("/notifications", headers=HTML)
    assert "2 unread" in feed.text
    assert f'href="/tickets/{ticket["id"]}"' in feed.text
    assert "Coffee &lt;machine&gt;" in feed.text and "<machine>" not in feed.text

    one = re.search(r'name="id" value="(\d+)"', feed.text)
    assert one is not None
    marked = await client.post(
        "/notifications/read",
        data={"id": one.group(1), "csrf_token": csrf_of(feed)},
        headers=HTML,
        follow_redirects=False,
    )
    assert marked.status_code == 303
    assert badge(await client.get("/notifications", headers=HTML)) == 1
    everything = await client.post(
        "/notifications/read",
        data={"csrf_token": csrf_of(feed)},
        headers=HTML,
        follow_redirects=True,
    )
    assert everything.status_code == 200 and badge(everything) == 0  # followed the redirect

    # Agents' links lead to the agent page.
    client.cookies.set("tk.session_token", agent.token)
    take = f"/api/tickets/{ticket['id']}/assign-toggle"
    assert (await client.post(take, headers=agent.auth)).is_success
    mine = f"/api/tickets/my/{ticket['id']}/comments"
    assert (await client.post(mine, json={"body": "Thanks"}, headers=reporter.auth)).is_success
    await worker.run_pending()
    agent_feed = await client.get("/notifications", headers=HTML)
    assert f'href="/agent/tickets/{ticket["id"]}"' in agent_feed.text and badge(agent_feed) == 1


async def test_the_unsubscribe_page_in_a_browser(
    client: httpx.AsyncClient,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    file_ticket: FileTicket,
) -> None:
    await file_ticket(reporter)
    await worker.run_pending()
    [receipt] = mailbox.to(reporter.email)
    path = "/" + str(receipt["List-Unsubscribe"]).strip().strip("<>").split("/", 3)[3]
    page = await client.get(path, headers=HTML)
    assert page.status_code == 200 and "Receipt when I file a ticket" in page.text
    done = await client.post(path, data={"csrf_token": csrf_of(page)}, headers=HTML)
    assert done.status_code == 200 and "Unsubscribed" in done.text
    prefs = (await client.get("/api/me/notifications", headers=reporter.auth)).json()["data"]
    assert prefs["email"]["ticketCreated"] is False
    broken = await client.get(path.replace("token=", "token=x"), headers=HTML)
    assert broken.status_code == 400 and "Link not valid" in broken.text
