"""Both ways of building a text+HTML mail (the fast `email.mime` one for ASCII headers, the
EmailMessage one for anything else) give the same mail to a reader."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from tekudasai.core.mail import build_message

BODY = "Hello <b>there</b> & welcome\nA long line " + "x" * 150 + " ünïcödé ✓\n\nBye"
HTML = '<p style="color:#123">Hello &lt;b&gt; ✓</p>\n' * 3
HEADERS = {
    "Message-ID": "<tk-1-2-abc@desk.example.com>",
    "In-Reply-To": "<ticket-1@desk.example.com>",
    "References": " ".join(f"<tk-1-{n}-abcdef123456@desk.example.com>" for n in range(11)),
    "Auto-Submitted": "auto-generated",
    "List-Unsubscribe": "<https://desk.example.com/settings/notifications/unsubscribe?token="
    + "A" * 90
    + ">",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def read(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def seen(message: EmailMessage) -> dict[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    out = {name: " ".join(str(message[name]).split()) for name in [*HEADERS, "Subject", "To"]}
    out["text"] = plain.get_content().replace("\r\n", "\n").rstrip("\n")  # type: ignore[attr-defined]
    out["html"] = html.get_content().replace("\r\n", "\n").rstrip("\n")  # type: ignore[attr-defined]
    return out


def test_the_fast_and_the_general_build_read_the_same() -> None:
    subject = "[TK #1] Drucker brennt — schon wieder\r\nBcc: evil@example.com"
    fast = build_message(
        sender="Te Kudasai <no-reply@desk.example.com>",
        to="a@example.test",
        subject=subject,
        body=BODY,
        html=HTML,
        headers=HEADERS,
    )
    general = build_message(
        sender="Té Kudasai <no-reply@desk.example.com>",  # not ASCII: the EmailMessage path
        to="a@example.test",
        subject=subject,
        body=BODY,
        html=HTML,
        headers=HEADERS,
    )
    assert not isinstance(fast, EmailMessage) and isinstance(general, EmailMessage)
    a, b = read(fast.as_bytes()), read(general.as_bytes())
    assert seen(a) == seen(b)
    assert a["Bcc"] is None and seen(a)["Subject"].endswith("Bcc: evil@example.com")
    assert seen(a)["text"].rstrip("\n") == BODY and seen(a)["Message-ID"] == HEADERS["Message-ID"]
    assert all(len(line) <= 998 for line in fast.as_bytes().splitlines())
