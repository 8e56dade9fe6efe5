"""`/api/docs` works offline: every asset it loads is served by the app itself (no CDN)."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx

BASE = "http://127.0.0.1:8000"
EXPECTED_TYPES = {
    ".js": "javascript",
    ".css": "text/css",
    ".png": "image/png",
}


async def test_docs_page_loads_only_same_origin_assets_and_they_are_served(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    # Everything the page fetches: script and link sources, and the OpenAPI document.
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    refs += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)
    assert refs, html
    scripts = [r for r in refs if r.endswith(".js")]
    styles = [r for r in refs if r.endswith(".css")]
    assert scripts and styles, refs
    for ref in refs:
        absolute = urljoin(f"{BASE}/api/docs", ref)
        assert urlsplit(absolute).netloc == urlsplit(BASE).netloc, f"off-site asset {ref}"
        served = await client.get(absolute)
        assert served.status_code == 200, (ref, served.status_code)
        suffix = next((s for s in EXPECTED_TYPES if urlsplit(absolute).path.endswith(s)), None)
        if suffix:
            assert EXPECTED_TYPES[suffix] in served.headers["content-type"], (ref, served.headers)
            assert len(served.content) > 1000
    bundle = await client.get(next(urljoin(f"{BASE}/api/docs", s) for s in scripts))
    assert b"SwaggerUIBundle" in bundle.content
