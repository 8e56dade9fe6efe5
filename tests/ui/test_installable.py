"""The web UI as an installable app: manifest, icons, service worker and the offline page."""

from __future__ import annotations

import json
import struct

import httpx
from playwright.async_api import Browser, expect

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.ui.conftest import LiveServer, new_page, screenshot, sign_in
from tests.ui.site_pages import ACCOUNTS, seed_site


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_manifest_names_the_app_and_its_icons(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        response = await http.get("/manifest.webmanifest")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/manifest+json")
        manifest = json.loads(response.text)
        assert manifest["name"] and manifest["short_name"]
        assert manifest["display"] == "standalone"
        assert manifest["scope"] == "/"
        assert manifest["theme_color"].startswith("#") and manifest["background_color"]
        sizes = {}
        for icon in manifest["icons"]:
            got = await http.get(icon["src"])
            assert got.status_code == 200, icon["src"]
            if icon["type"] == "image/png":
                width, height = png_size(got.content)
                assert icon["sizes"] == f"{width}x{height}"
                sizes[icon.get("purpose", "any")] = sizes.get(icon.get("purpose", "any"), set())
                sizes[icon.get("purpose", "any")].add(width)
        assert {192, 512} <= sizes["any"]
        assert 512 in sizes["maskable"]
        # The start URL leads a signed-out visitor to the sign-in page.
        start = await http.get(manifest["start_url"])
        assert start.status_code == 303 and start.headers["location"] == "/auth/login"

        worker = await http.get("/sw.js")
        assert worker.status_code == 200
        assert worker.headers["content-type"].startswith("text/javascript")
        assert "/static/app.css" in worker.text and '"/offline"' in worker.text
        offline = await http.get("/offline")
        assert offline.status_code == 200 and "You are offline" in offline.text


async def test_pages_link_the_manifest_and_the_start_url_follows_the_role(
    browser: Browser, live_server: LiveServer, database: Database, cipher: PiiCipher
) -> None:
    await seed_site(database, cipher)
    for role, landing in (("agent", "/agent"), ("customer", "/")):
        context, page = await new_page(browser, live_server)
        account = ACCOUNTS[role]
        await sign_in(page, account.email, account.password)
        href = await page.locator('link[rel="manifest"]').get_attribute("href")
        assert href == "/manifest.webmanifest"
        await page.goto("/app")
        assert page.url == live_server.url + landing
        await context.close()


async def test_service_worker_shows_the_offline_page_without_network(
    browser: Browser, live_server: LiveServer, database: Database, cipher: PiiCipher
) -> None:
    await seed_site(database, cipher)
    context, page = await new_page(browser, live_server)
    agent = ACCOUNTS["agent"]
    await sign_in(page, agent.email, agent.password)
    await page.goto("/agent")
    scope = await page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == live_server.url + "/"
    await page.wait_for_function("navigator.serviceWorker.controller !== null")
    cached = await page.evaluate(
        "caches.keys().then(async keys => (await (await caches.open(keys[0])).keys())"
        ".map(r => new URL(r.url).pathname))"
    )
    assert "/offline" in cached and "/static/app.css" in cached
    # Nothing personal is kept: pages visited (the queue) are never cached.
    await page.goto("/agent/tickets/1")
    await page.goto("/agent")
    cached = await page.evaluate(
        "caches.keys().then(async keys => (await (await caches.open(keys[0])).keys())"
        ".map(r => new URL(r.url).pathname))"
    )
    assert all(p == "/offline" or p.startswith("/static/") for p in cached), cached

    await context.set_offline(True)
    await page.goto("/agent/tickets/1")
    await expect(page.get_by_role("heading", name="You are offline")).to_be_visible()
    assert page.url.endswith("/agent/tickets/1")  # the address stays: "Try again" reloads it
    # The cached style sheet still applies (the page is not unstyled).
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(246, 247, 251)"
    await screenshot(page, "offline")

    await context.set_offline(False)
    await page.get_by_role("link", name="Try again").click()
    await expect(page.get_by_role("heading", name="#1", exact=False)).to_be_visible()
    assert not page.js_errors  # type: ignore[attr-defined]
    await context.close()
