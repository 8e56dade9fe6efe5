"""Mail sent back to back reuses one SMTP session; a session the server dropped is replaced
without losing or doubling the mail."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiosmtpd.smtp import SMTP

from tekudasai.core.mail import send_mail
from tests.conftest import make_settings
from tests.jobs.conftest import Inbox, free_port


async def test_a_burst_shares_a_session_and_a_dropped_one_is_replaced(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(None, tmp_path, TK_SMTP_URL=f"smtp://127.0.0.1:{port}")
    inbox = Inbox()
    sessions: list[SMTP] = []

    def session() -> SMTP:
        sessions.append(SMTP(inbox))
        return sessions[-1]

    loop = asyncio.get_running_loop()
    server = await loop.create_server(session, "127.0.0.1", port)
    try:
        for n in range(5):
            await send_mail(settings, to="a@example.test", subject=f"Mail {n}", body="Hello")
        assert len(inbox.messages) == 5 and len(sessions) == 1

        for smtp in sessions:  # the server drops the idle session (its timeout, a restart)
            assert smtp.transport is not None
            smtp.transport.close()
        await asyncio.sleep(0.1)
        await send_mail(settings, to="a@example.test", subject="After the drop", body="Hello")
        assert len(inbox.messages) == 6 and len(sessions) == 2
        subjects = [m.content for m in inbox.messages]
        assert sum(b"After the drop" in (c or b"") for c in subjects) == 1  # type: ignore[operator]
    finally:
        server.close()
        for smtp in sessions:
            if smtp.transport is not None:
                smtp.transport.close()
        await server.wait_closed()
