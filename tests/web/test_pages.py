"""Page routes over HTTP (no browser): redirects, CSRF, security headers, escaping, roles,
and that a refused post leaves nothing behind."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import func, select

from tekudasai.accounts.models import Session
from tekudasai.forms.models import Form
from tekudasai.tickets import service as tickets_service
from tekudasai.tickets.models import Ticket, TicketComment, TicketLog
from tests.factories import Person, make_form, make_person

HTML = {"Accept": "text/html"}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def as_browser(client: httpx.AsyncClient, person: Person | None = None) -> httpx.AsyncClient:
    client.cookies.clear()
    if person is not None:
        client.cookies.set("tk.session_token", person.token)
    return client


async def csrf(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path, headers=HTML)
    assert page.status_code == 200, page.text
    match = TOKEN.search(page.text)
    assert match, "the page has no CSRF token"
    return match.group(1)


async def submit(client: httpx.AsyncClient, path: str, token: str, **fields: str) -> httpx.Response:
    """Post a page's form as the browser does: the fields, the CSRF token, HTML accepted."""
    return await client.post(path, data={**fields, "csrf_token": token}, headers=HTML)


async def count(database: Any, model: Any) -> int:
    async with database.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def a_ticket(database: Any, cipher: Any, reporter: Person, summary: str = "Printer") -> int:
    admin = await make_person(database, cipher, role="admin")
    form = await make_form(
        database,
        admin,
        name="General",
        elements=[{"type": "textarea", "name": "details", "label": "Details"}],
    )
    async with database.sessionmaker() as db, db.begin():
        ticket = await tickets_service.create_ticket(
            db,
            reporter_id=reporter.user.id,
            form_id=form["id"],
            summary=summary,
            form_response={"details": "x"},
        )
        return ticket.id


async def test_signed_out_visitors_are_sent_to_login(client: httpx.AsyncClient) -> None:
    for path in ("/", "/new-ticket", "/tickets/1", "/agent", "/agent/forms/new", "/admin/users"):
        response = await client.get(path, headers=HTML)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/auth/login?next=%2F"), path


async def test_pages_send_a_strict_content_security_policy(client: httpx.AsyncClient) -> None:
    for path in ("/auth/login", "/auth/signup", "/no-such-page"):
        response = await client.get(path, headers=HTML)
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    missing = await client.get("/no-such-page", headers=HTML)
    assert missing.status_code == 404
    assert "Page not found" in missing.text
    # The API keeps its JSON envelope.
    api = await client.get("/api/no-such", headers=HTML)
    assert api.json()["code"] == "NOT_FOUND"


async def test_login_without_csrf_token_is_refused_and_creates_no_session(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    person = await make_person(database, cipher)
    before = await count(database, Session)
    response = await client.post(
        "/auth/login", data={"email": person.email, "password": person.password}, headers=HTML
    )
    assert response.status_code == 303
    assert "tk.session_token" not in response.cookies
    assert await count(database, Session) == before


async def test_login_with_token_signs_in_and_never_redirects_off_site(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    person = await make_person(database, cipher)
    token = await csrf(as_browser(client), "/auth/login")
    response = await submit(
        client,
        "/auth/login",
        token,
        email=person.email,
        password=person.password,
        next="//evil.example/steal",
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert response.cookies.get("tk.session_token")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


async def test_wrong_password_answers_400_with_the_form(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    person = await make_person(database, cipher)
    token = await csrf(as_browser(client), "/auth/login")
    response = await submit(
        client, "/auth/login", token, email=person.email, password="not-it-at-all"
    )
    assert response.status_code == 400
    assert "Wrong e-mail or password" in response.text
    assert f'value="{person.email}"' in response.text


async def test_user_text_is_escaped(client: httpx.AsyncClient, database: Any, cipher: Any) -> None:
    person = await make_person(database, cipher, name="<img src=x onerror=alert(1)>")
    await a_ticket(database, cipher, person, summary="<script>alert('x')</script>")
    page = await as_browser(client, person).get("/", headers=HTML)
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text


async def test_customers_get_404_on_agent_and_admin_pages(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    person = await make_person(database, cipher)
    ticket_id = await a_ticket(database, cipher, person)
    as_browser(client, person)
    for path in ("/agent", f"/agent/tickets/{ticket_id}", "/agent/forms", "/admin/users"):
        response = await client.get(path, headers=HTML)
        assert response.status_code == 404, path
    agent = await make_person(database, cipher, role="agent")
    as_browser(client, agent)
    assert (await client.get("/agent", headers=HTML)).status_code == 200
    assert (await client.get("/admin/users", headers=HTML)).status_code == 404
    # Someone else's ticket does not exist for a customer.
    other = await make_person(database, cipher)
    as_browser(client, other)
    assert (await client.get(f"/tickets/{ticket_id}", headers=HTML)).status_code == 404


async def test_reply_without_token_writes_nothing(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    person = await make_person(database, cipher)
    ticket_id = await a_ticket(database, cipher, person)
    as_browser(client, person)
    response = await client.post(
        f"/tickets/{ticket_id}/reply", data={"body": "hello", "csrf_token": "forged"}
    )
    assert response.status_code == 303
    assert await count(database, TicketComment) == 0
    token = await csrf(client, f"/tickets/{ticket_id}")
    response = await submit(client, f"/tickets/{ticket_id}/reply", token, body="hello")
    assert response.status_code == 303
    assert await count(database, TicketComment) == 1
    # An empty reply is refused with a message, and nothing is stored.
    response = await submit(client, f"/tickets/{ticket_id}/reply", token, body="   ")
    assert response.status_code == 303
    assert await count(database, TicketComment) == 1


async def test_invalid_transition_is_explained_and_changes_nothing(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    customer = await make_person(database, cipher)
    agent = await make_person(database, cipher, role="agent")
    ticket_id = await a_ticket(database, cipher, customer)
    async with database.sessionmaker() as db, db.begin():
        await tickets_service.update_ticket(
            db, ticket_id=ticket_id, actor_id=agent.user.id, status="closed"
        )
    logs_before = await count(database, TicketLog)
    as_browser(client, agent)
    token = await csrf(client, f"/agent/tickets/{ticket_id}")
    response = await submit(
        client, f"/agent/tickets/{ticket_id}/status", token, status="in_progress"
    )
    assert response.status_code == 303
    follow = await client.get(response.headers["location"], headers=HTML)
    assert "cannot go from closed to in_progress" in follow.text
    async with database.sessionmaker() as db:
        assert (await db.get(Ticket, ticket_id)).status == "closed"  # type: ignore[union-attr]
    assert await count(database, TicketLog) == logs_before


async def test_form_builder_refuses_bad_definitions_without_saving(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    admin = await make_person(database, cipher, role="admin")
    as_browser(client, admin)
    token = await csrf(client, "/agent/forms/new")
    bad_json = await submit(client, "/agent/forms/new", token, name="X", elements="[{not json")
    assert bad_json.status_code == 400
    assert "Not valid JSON" in bad_json.text
    unknown_type = await submit(
        client, "/agent/forms/new", token, name="X", elements='[{"type": "rocket", "name": "a"}]'
    )
    assert unknown_type.status_code == 400
    assert "unknown element type" in unknown_type.text
    no_name = await submit(client, "/agent/forms/new", token, name=" ", elements="[]")
    assert no_name.status_code == 400
    assert await count(database, Form) == 0


async def test_my_tickets_search_status_filter_and_pages(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    person = await make_person(database, cipher)
    admin = await make_person(database, cipher, role="admin")
    form = await make_form(database, admin, name="F", elements=[])
    async with database.sessionmaker() as db, db.begin():
        for n in range(25):
            await tickets_service.create_ticket(
                db,
                reporter_id=person.user.id,
                form_id=form["id"],
                summary=f"{'Printer' if n % 5 == 0 else 'Laptop'} issue {n}",
                form_response={},
            )
    as_browser(client, person)
    first = await client.get("/", headers=HTML)
    assert first.text.count('class="row-link"') == 20
    assert "Page 1 of 2 · 25 total" in first.text
    assert "Laptop issue 24" in first.text  # newest first
    second = await client.get("/?page=2", headers=HTML)
    assert second.text.count('class="row-link"') == 5
    assert "Laptop issue 1<" in second.text
    found = await client.get("/?search=printer", headers=HTML)
    assert found.text.count('class="row-link"') == 5
    none = await client.get("/?search=printer&status=closed", headers=HTML)
    assert "No tickets match" in none.text
    # Odd input is handled, not a 500.
    odd = await client.get("/?page=abc&status=bogus&search=%25_%5C", headers=HTML)
    assert odd.status_code == 200


async def test_login_page_offers_configured_oauth_providers(
    db_url: str, tmp_path: Any, database: Any
) -> None:
    from tekudasai.app import create_app
    from tests.conftest import BASE_URL, make_settings

    settings = make_settings(
        db_url, tmp_path / "data", GITHUB_CLIENT_ID="gh-id", GITHUB_CLIENT_SECRET="gh-secret"
    )
    app = create_app(settings, database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        page = await http.get("/auth/login?next=/tickets/5", headers=HTML)
    assert 'href="/api/auth/github?callbackURL=/tickets/5"' in page.text
    assert "Continue with GitHub" in page.text
    assert "GitLab" not in page.text


async def test_pages_apply_the_tickets_rate_limit(
    db_url: str, tmp_path: Any, database: Any, cipher: Any
) -> None:
    from tekudasai.app import create_app
    from tests.conftest import BASE_URL, make_settings

    person = await make_person(database, cipher)
    ticket_id = await a_ticket(database, cipher, person)
    settings = make_settings(db_url, tmp_path / "data", TK_RATE_LIMITS="tickets=1/minute")
    app = create_app(settings, database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, headers={"Origin": BASE_URL}
    ) as http:
        http.cookies.set("tk.session_token", person.token)
        token = await csrf(http, f"/tickets/{ticket_id}")
        for body in ("first", "second"):
            response = await submit(http, f"/tickets/{ticket_id}/reply", token, body=body)
            assert response.status_code == 303
        page = await http.get(response.headers["location"], headers=HTML)
    assert "Too many requests" in page.text
    assert await count(database, TicketComment) == 1
