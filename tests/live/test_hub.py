"""The hub's process-level duties: its signal hook is put back when the app stops (an app
started and stopped in one process, as the test suite does, leaves no chain of handlers)."""

from __future__ import annotations

import asyncio
import signal

from tekudasai.app import create_app
from tekudasai.config import Settings
from tekudasai.db.session import Database


async def test_the_exit_signal_hook_is_installed_while_running_and_removed_after(
    settings: Settings, database: Database
) -> None:
    before = signal.getsignal(signal.SIGINT)
    app = create_app(settings, database)
    async with app.router.lifespan_context(app):
        for _ in range(100):
            if signal.getsignal(signal.SIGINT) is not before:
                break
            await asyncio.sleep(0.01)
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
