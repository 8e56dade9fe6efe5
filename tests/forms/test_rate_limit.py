"""The `forms` rate limit on writes to forms and on answer validation."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import func, select

from tekudasai.app import create_app
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.forms.models import Form
from tests.conftest import BASE_URL, make_settings
from tests.factories import make_person

DEFINITION = {
    "name": "Limited",
    "description": "",
    "elements": [
        {"id": "e1", "type": "textarea", "name": "what", "label": "What?", "required": True}
    ],
}


async def test_form_writes_are_rate_limited_per_admin(
    db_url: str, tmp_path: Path, database: Database, cipher: PiiCipher
) -> None:
    admin = await make_person(database, cipher, role="admin")
    other = await make_person(database, cipher, role="admin")
    settings = make_settings(db_url, tmp_path / "data", TK_RATE_LIMITS="forms=2/minute")
    app = create_app(settings, database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            statuses = [
                (await client.post("/api/forms", json=DEFINITION, headers=admin.auth)).status_code
                for _ in range(3)
            ]
            assert statuses == [200, 200, 429]
            limited = await client.post("/api/forms", json=DEFINITION, headers=admin.auth)
            assert limited.json()["code"] == "RATE_LIMITED"
            assert int(limited.headers["Retry-After"]) >= 1
            # another admin has a budget of their own; reading is never limited
            assert (
                await client.post("/api/forms", json=DEFINITION, headers=other.auth)
            ).status_code == 200
            assert (await client.get("/api/forms", headers=admin.auth)).status_code == 200
    async with database.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Form)) == 3
