"""The `tickets` rate limit on the customer's writes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tekudasai.app import create_app
from tekudasai.db.session import Database
from tekudasai.forms.models import Form
from tests.conftest import BASE_URL, make_settings
from tests.factories import Person
from tests.tickets.conftest import GOOD_RESPONSE, scalar

pytest.importorskip("tekudasai.db.ratelimit")


async def test_filing_tickets_is_rate_limited_per_user(
    db_url: str,
    tmp_path: Path,
    database: Database,
    reporter: Person,
    other: Person,
    form: Form,
) -> None:
    settings = make_settings(db_url, tmp_path / "data", TK_RATE_LIMITS="tickets=2/minute")
    app = create_app(settings, database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            body = {"formId": form.id, "summary": "Again", "formResponse": GOOD_RESPONSE}

            async def file(person: Person) -> httpx.Response:
                return await client.post("/api/tickets/my", json=body, headers=person.auth)

            assert [(await file(reporter)).status_code for _ in range(2)] == [200, 200]
            limited = await file(reporter)
            assert limited.status_code == 429
            assert limited.json()["code"] == "RATE_LIMITED"
            assert int(limited.headers["Retry-After"]) >= 1
            assert (await file(other)).status_code == 200
            # Reading is not limited.
            listed = await client.get("/api/tickets/my", headers=reporter.auth)
            assert listed.status_code == 200
    assert await scalar(database, "SELECT count(*) FROM tickets") == 3
