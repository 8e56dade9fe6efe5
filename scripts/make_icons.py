"""Render the app icons (web manifest) from their SVG sources with Chromium.

Run after changing an icon SVG: `.venv/bin/python scripts/make_icons.py`; commit the PNGs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import async_playwright

ICONS = Path(__file__).resolve().parents[1] / "src" / "tekudasai" / "web" / "static" / "icons"
# (source SVG, size, PNG name)
RENDERS = [
    ("icon.svg", 192, "icon-192.png"),
    ("icon.svg", 512, "icon-512.png"),
    ("icon-maskable.svg", 512, "icon-maskable-512.png"),
    ("icon.svg", 180, "apple-touch-icon.png"),
]


async def main() -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--headless"]
        )
        for source, size, name in RENDERS:
            page = await browser.new_page(viewport={"width": size, "height": size})
            svg = (ICONS / source).read_text()
            html = (
                "<style>html,body{margin:0;background:transparent}svg{display:block}</style>"
                + svg.replace("<svg ", f'<svg width="{size}" height="{size}" ', 1)
            )
            await page.set_content(html)
            await page.screenshot(path=str(ICONS / name), omit_background=True)
            await page.close()
            print(f"{name}: {size}x{size}")
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
