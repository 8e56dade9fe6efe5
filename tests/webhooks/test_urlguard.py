"""The SSRF guard: every bad URL is a 400 with a field error, through the real API (with the
address rule on, as in production), plus the checks that need no HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.webhooks import urlguard
from tests.accounts.conftest import client_for
from tests.conftest import make_settings
from tests.factories import Person

EVENTS = ["ticket.created"]


@pytest.fixture
def strict_settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "strict")


@pytest.fixture
async def strict(database: Database, strict_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app without TK_WEBHOOK_ALLOW_PRIVATE (the default)."""
    async with client_for(database, strict_settings) as http:
        yield http


async def refused(client: httpx.AsyncClient, admin: Person, url: str) -> str:
    response = await client.post(
        "/api/webhooks", json={"url": url, "events": EVENTS}, headers=admin.auth
    )
    assert response.status_code == 400, (url, response.text)
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR" and body["errors"][0]["field"] == "url", body
    return str(body["errors"][0]["message"])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://localhost:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://2130706433/hook", "loopback"),  # 127.0.0.1 as one decimal number
        ("http://0x7f.1/hook", "loopback"),  # and in inet_aton's short hex form
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
        ("http://[64:ff9b::7f00:1]/hook", "loopback"),  # NAT64-embedded
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.0.9/hook", "private"),
        ("https://192.168.1.10/hook", "private"),
        ("http://[fd12:3456::1]/hook", "private"),
        ("http://169.254.10.20/hook", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://100.64.0.7/hook", "carrier-grade NAT"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://240.0.0.1/hook", "reserved"),
        ("http://192.0.2.1/hook", "private"),  # documentation range (Python counts it private)
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
    ],
)
async def test_internal_addresses_are_refused(
    strict: httpx.AsyncClient, admin: Person, url: str, reason: str
) -> None:
    assert reason in await refused(strict, admin, url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://user:secret@93.184.216.34/hook", "credentials"),
        ("https://token@93.184.216.34/hook", "credentials"),
        ("ftp://93.184.216.34/hook", "only http"),
        ("file:///etc/passwd", "only http"),
        ("javascript:alert(1)", "only http"),
        ("gopher://93.184.216.34:70/_x", "only http"),
        ("https://93.184.216.34:99999/hook", "port"),
        ("https:///nohost", "no host"),
        ("https://exa mple.com/hook", "spaces"),
        ("", "give the receiver"),
        # Latin "apple" with a Cyrillic a (U+0430): one label, two scripts.
        ("https://\u0430pple.com/hook", "mixes alphabets"),
        ("https://xn--pple-43d.com/hook", "mixes alphabets"),  # the same, as punycode
        # All-Cyrillic "apple" look-alike beside the Latin "com": imitates Latin letters.
        ("https://xn--80ak6aa92e.com/hook", "imitates Latin"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
        ("https://good.example\\.evil.example/hook", "not a valid domain name"),
        ("https://a..b.example/hook", "not a valid domain name"),
        ("https://" + "x" * 64 + ".example/hook", "not a valid domain name"),
    ],
)
async def test_bad_urls_are_refused(
    strict: httpx.AsyncClient, admin: Person, url: str, reason: str
) -> None:
    assert reason in await refused(strict, admin, url)


async def test_metadata_stays_refused_when_private_receivers_are_allowed(
    client: httpx.AsyncClient, admin: Person
) -> None:
    """`client` here runs with TK_WEBHOOK_ALLOW_PRIVATE=true (tests/webhooks/conftest.py)."""
    assert "metadata" in await refused(client, admin, "http://169.254.169.254/")
    made = await client.post(
        "/api/webhooks", json={"url": "http://10.0.0.5/hook", "events": EVENTS}, headers=admin.auth
    )
    assert made.status_code == 200, made.text


async def test_a_public_address_on_another_port_is_allowed_but_flagged(
    strict: httpx.AsyncClient, admin: Person
) -> None:
    made = await strict.post(
        "/api/webhooks",
        json={"url": "https://93.184.216.34:8443/hook", "events": EVENTS},
        headers=admin.auth,
    )
    assert made.status_code == 200, made.text
    assert made.json()["data"]["unusualPort"] is True
    usual = await strict.post(
        "/api/webhooks",
        json={"url": "https://93.184.216.34/hook", "events": EVENTS},
        headers=admin.auth,
    )
    assert usual.json()["data"]["unusualPort"] is False
    hook_id = usual.json()["data"]["id"]
    # Changing the URL is checked like creating it.
    patched = await strict.patch(
        f"/api/webhooks/{hook_id}", json={"url": "http://127.0.0.1/x"}, headers=admin.auth
    )
    assert patched.status_code == 400 and patched.json()["errors"][0]["field"] == "url"


def test_punycode_hosts_are_shown_decoded_and_sent_encoded() -> None:
    checked = urlguard.check_syntax("https://XN--E1AFMKFD.xn--p1ai:443/Hook?x=1")
    assert checked.display_host == "пример.рф"
    assert checked.host == "xn--e1afmkfd.xn--p1ai"
    assert checked.url == "https://xn--e1afmkfd.xn--p1ai:443/Hook?x=1"
    assert not checked.unusual_port
    # Typed in Unicode, stored in ASCII: what is shown and what is contacted agree.
    assert urlguard.check_syntax("https://пример.рф/").url == "https://xn--e1afmkfd.xn--p1ai/"
    # One non-Latin script throughout, or Latin with accents, is a real name, not a look-alike.
    assert urlguard.check_syntax("https://bücher.example/").display_host == "bücher.example"


def test_every_address_class_has_a_reason() -> None:
    import ipaddress

    public = ipaddress.ip_address("93.184.216.34")
    assert urlguard.address_problem(public, allow_private=False) is None
    loop = ipaddress.ip_address("127.0.0.1")
    assert urlguard.address_problem(loop, allow_private=True) is None
    meta = ipaddress.ip_address("169.254.169.254")
    assert urlguard.address_problem(meta, allow_private=True) == "a cloud metadata address"
