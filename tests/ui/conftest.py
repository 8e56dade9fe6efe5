"""Browser-test harness: the real app under uvicorn in a thread, driven by Debian's Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from tekudasai.app import create_app
from tests.conftest import make_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

pytestmark = pytest.mark.ui


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ui/" in str(item.fspath):
            item.add_marker(pytest.mark.ui)
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is not installed")
        for item in items:
            if "tests/ui/" in str(item.fspath):
                item.add_marker(skip)


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


@pytest.fixture
def live_server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """The full app on an ephemeral port; its Database is created inside the server's own loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    # It runs the job queue as `serve` does (mail is sent by queued jobs); no backups.
    settings = make_settings(
        db_url,
        tmp_path / "data",
        BETTER_AUTH_URL=base,
        TK_BACKGROUND_JOBS="true",
        TK_BACKUP_INTERVAL="off",
        # As `serve` does: pages work from http://localhost:PORT too (passkeys need it).
        TK_LISTEN_ORIGINS=f"{base},http://localhost:{port}",
    )
    app = create_app(settings, None)
    # A page left open holds its live stream: the server would wait for it for ever (in
    # `serve`, SIGTERM ends the streams first; a thread gets no signal), so bound the wait.
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", access_log=False, timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        if not thread.is_alive():
            raise RuntimeError("the live server did not start")
        threading.Event().wait(0.05)
    else:
        raise RuntimeError("the live server did not start in 10 s")
    yield LiveServer(url=base, server=server, thread=thread)
    server.should_exit = True
    thread.join(timeout=15)
    sock.close()
    # A server still running here would keep its job worker and hub going under every later
    # test (a 2-core runner then times out page loads far away from the cause).
    assert not thread.is_alive(), "the live server did not stop"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def new_page(browser: Browser, live_server: LiveServer) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 860}
    )
    page = await context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Script errors and CSP refusals count; a 4xx document status is expected in some tests.
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.js_errors = errors  # type: ignore[attr-defined]
    return context, page


@pytest.fixture
async def page(browser: Browser, live_server: LiveServer) -> AsyncIterator[Page]:
    context, page = await new_page(browser, live_server)
    yield page
    await context.close()


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/ for a human to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
    with contextlib.suppress(PlaywrightError):  # pages without JavaScript cannot scroll
        await page.evaluate("window.scrollTo(0, 0)")  # else the sticky header lands mid-page
    await page.screenshot(path=str(path), full_page=True)
    return path


async def sign_in(page: Page, email: str, password: str) -> None:
    await page.goto("/auth/login")
    await page.get_by_label("E-mail").fill(email)
    await page.locator("#f-password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()


async def sign_up(page: Page, name: str, email: str, password: str) -> None:
    """Fill in the sign-up page and submit it (the password twice)."""
    await page.goto("/auth/signup")
    await page.get_by_label("Full name").fill(name)
    await page.get_by_label("E-mail").fill(email)
    await page.locator("#f-password").fill(password)
    await page.get_by_label("Repeat password").fill(password)
    await page.get_by_role("button", name="Create account").click()


def wait(seconds: float) -> asyncio.Future[None]:
    return asyncio.sleep(seconds)  # type: ignore[return-value]
