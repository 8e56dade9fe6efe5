"""One CSRF module (API and pages judge origins alike), one session-token helper, and the
itsdangerous-signed flash cookie."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from tekudasai.core.csrf import bearer_token, session_token
from tekudasai.web.flash import FLASH_COOKIE, flash, read_flashes
from tests.factories import make_person

HTML = {"Accept": "text/html"}


def test_session_token_from_bearer_or_cookie() -> None:
    assert bearer_token("Bearer abc ") == "abc"
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token(None) is None
    assert session_token("Bearer abc", "cookie.sig") == "abc"
    assert session_token(None, "tok.signature") == "tok"
    assert session_token(None, "tok") == "tok"
    assert session_token("Bearer ", None) is None


async def test_page_form_posts_judge_origin_case_like_the_api(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    person = await make_person(database, cipher)
    client.cookies.set("tk.session_token", person.token)
    page = await client.get("/", headers=HTML)
    assert page.status_code == 200
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    # Scheme and host are case-insensitive: the middleware always said so, the page check not.
    response = await client.post(
        "/auth/logout",
        data={"csrf_token": token},
        headers={**HTML, "Origin": "HTTP://127.0.0.1:8000"},
    )
    assert response.status_code == 303, response.text[:300]
    client.cookies.set("tk.session_token", person.token)
    after = await client.get("/", headers=HTML)
    assert after.status_code == 303  # signed out: the post was accepted


def _request(app: FastAPI, cookie: str | None = None) -> Request:
    headers = [(b"cookie", f"{FLASH_COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "app": app, "headers": headers, "method": "GET", "path": "/"})


async def test_flash_cookie_is_signed_and_tamper_proof(app: FastAPI) -> None:
    response = Response()
    flash(_request(app), response, "Saved.")
    value = response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1].strip('"')
    assert read_flashes(_request(app, value)) == [{"kind": "success", "text": "Saved."}]
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    assert read_flashes(_request(app, tampered)) == []
    assert read_flashes(_request(app, "W10.garbage")) == []
