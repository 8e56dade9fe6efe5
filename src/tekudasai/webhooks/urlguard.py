"""Where webhooks may send (SSRF guard).

At create/update: http(s) only, no credentials in the URL, no look-alike host names (a label
mixing scripts, or a non-Latin label imitating Latin letters beside Latin ones), and every
address the host resolves to must be public. At delivery the host is resolved again and the
connection goes to the address just checked (delivery.py), so a DNS answer that changes in
between (rebinding) cannot reach an internal address. `TK_WEBHOOK_ALLOW_PRIVATE=true` lifts
the address rule (for receivers on the same host or network), except for cloud metadata
endpoints, which are never a receiver.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tekudasai.core.errors import ValidationFailed

MAX_URL_LENGTH = 2000
STANDARD_PORTS = {"http": 80, "https": 443}
METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NEUTRAL_SCRIPTS = frozenset({"COMMON", "INHERITED"})
RESOLVE_TIMEOUT_S = 5.0
# Letters, digits, hyphens (and underscores, seen in real names) between dots, once encoded.
_HOST_CHARS = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValidationFailed):
    def __init__(self, message: str) -> None:
        super().__init__(f"url: {message}", errors=[{"field": "url", "message": message}])


@dataclass(frozen=True)
class CheckedUrl:
    url: str  # normalised: the host in ASCII (punycode), lower case
    scheme: str
    host: str  # ASCII, as resolved (an IPv6 literal without brackets)
    port: int
    display_host: str  # punycode decoded, as a person should read it
    unusual_port: bool


def address_problem(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why a receiver must not be at `ip`, or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None
        )
        if embedded is not None:
            return address_problem(embedded, allow_private=allow_private)
    if ip in METADATA:
        return "a cloud metadata address"
    if allow_private:
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a carrier-grade NAT address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a reserved address"
    return None


@functools.cache
def _script_data() -> Any:
    # Loaded on first use (about 1 MB of Unicode data); the accounts domain uses it too.
    from confusable_homoglyphs import categories, confusables

    return categories, confusables


def _scripts(label: str) -> set[str]:
    categories = _script_data()[0]
    return {str(categories.alias(c)) for c in label} - NEUTRAL_SCRIPTS


def _looks_ascii(char: str) -> bool:
    if char.isascii():
        return True
    found = _script_data()[1].confusables_data.get(char) or []
    return any(entry["c"].isascii() for entry in found)


def _decode_host(host: str) -> tuple[str, str]:
    """(ASCII host, readable host). Raises UrlRefused for names IDNA cannot encode."""
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
        readable = ascii_host.encode("ascii").decode("idna")
    except UnicodeError:
        raise UrlRefused("the host name is not a valid domain name") from None
    if not _HOST_CHARS.fullmatch(ascii_host):
        raise UrlRefused("the host name is not a valid domain name")
    return ascii_host, readable


def homograph_problem(readable_host: str) -> str | None:
    labels = [label for label in readable_host.split(".") if label]
    scripts = [_scripts(label) for label in labels]
    for label, used in zip(labels, scripts, strict=True):
        if len(used) > 1:
            return f"the host name mixes alphabets in “{label}” (a look-alike of another name)"
    everywhere = set().union(*scripts) if scripts else set()
    if "LATIN" in everywhere and len(everywhere) > 1:
        for label, used in zip(labels, scripts, strict=True):
            if used and "LATIN" not in used and all(_looks_ascii(c) for c in label):
                return f"the host name label “{label}” imitates Latin letters"
    return None


def check_syntax(url: str) -> CheckedUrl:
    """Everything that does not need DNS."""
    url = url.strip()
    if not url:
        raise UrlRefused("give the receiver's URL")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"at most {MAX_URL_LENGTH} characters")
    if any(ord(c) < 0x21 or c == "\x7f" for c in url):
        raise UrlRefused("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("not a valid URL (check the port)") from None
    scheme = parts.scheme.lower()
    if scheme not in STANDARD_PORTS:
        raise UrlRefused("only http:// and https:// URLs can receive webhooks")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRefused("credentials in the URL are not allowed (use the signature instead)")
    host = parts.hostname or ""
    if not host:
        raise UrlRefused("the URL has no host")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        ascii_host = readable = literal.compressed
    else:
        ascii_host, readable = _decode_host(host)
        problem = homograph_problem(readable)
        if problem:
            raise UrlRefused(problem)
    effective_port = port if port is not None else STANDARD_PORTS[scheme]
    shown = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    netloc = shown if port is None else f"{shown}:{port}"
    normalised = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return CheckedUrl(
        url=normalised,
        scheme=scheme,
        host=ascii_host,
        port=effective_port,
        display_host=readable,
        unusual_port=effective_port not in (80, 443),
    )


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        raise UrlRefused(f"the host {host} does not resolve") from None
    found: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise UrlRefused(f"the host {host} does not resolve")
    return found


async def checked_address(checked: CheckedUrl, *, allow_private: bool) -> IPAddress:
    """Resolve now and return an address that may be contacted; every answer must pass."""
    addresses = await resolve(checked.host, checked.port)
    for ip in addresses:
        problem = address_problem(ip, allow_private=allow_private)
        if problem:
            raise UrlRefused(
                f"{checked.display_host} resolves to {ip}, {problem}; webhooks may only "
                "go to public addresses"
            )
    return addresses[0]


async def check_url(url: str, *, allow_private: bool) -> CheckedUrl:
    """For create/update: syntax and look-alikes, then the addresses the host has now."""
    checked = check_syntax(url)
    await checked_address(checked, allow_private=allow_private)
    return checked
