"""Both ways of building a text+HTML mail (the fast `email.mime` one for ASCII headers, the
EmailMessage one for anything else) give the same mail to a reader."""

from __future__ import annotations

import email
import email.policy
from email.errors import HeaderParseError
from email.message import EmailMessage, Message
from email.policy import Policy, compat32

import pytest

from tekudasai.core.mail import _PLAIN_HEADERS, _PlainHeaders, build_message

SMTP_COMPAT32 = compat32.clone(linesep="\r\n")

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


def mail(
    subject: str, *, sender: str = "Te Kudasai <no-reply@desk.example.com>", **headers: str
) -> Message:
    return build_message(
        sender=sender,
        to="a@example.test",
        subject=subject,
        body=BODY,
        html=HTML,
        headers={**HEADERS, **headers},
    )


def test_the_fast_and_the_general_build_read_the_same() -> None:
    subject = "[TK #1] Drucker brennt — schon wieder\r\nBcc: evil@example.com"
    fast = mail(subject)
    # Not ASCII: the EmailMessage path.
    general = mail(subject, sender="Té Kudasai <no-reply@desk.example.com>")
    assert not isinstance(fast, EmailMessage) and isinstance(general, EmailMessage)
    a, b = read(fast.as_bytes()), read(general.as_bytes())
    assert seen(a) == seen(b)
    assert a["Bcc"] is None and seen(a)["Subject"].endswith("Bcc: evil@example.com")
    assert seen(a)["text"].rstrip("\n") == BODY and seen(a)["Message-ID"] == HEADERS["Message-ID"]
    assert all(len(line) <= 998 for line in fast.as_bytes().splitlines())


def _with_policy(message: Message, policy: Policy) -> Message:
    for part in message.walk():
        part.policy = policy
    return message


def test_plain_headers_write_what_compat32_writes() -> None:
    """The fast fold (`_PlainHeaders`) writes a mail byte for byte as compat32 does, headers
    that must fold or encode included, with either line ending."""
    odd = {
        "X-Spaces": "two  spaces and a trailing one ",
        "X-Tab": "a\tb",
        "X-Exactly-At-The-Limit": "v" * (78 - len("X-Exactly-At-The-Limit: ")),
        "X-One-Past-The-Limit": "v" * (79 - len("X-One-Past-The-Limit: ")),
        "X-Encoded-Word-Lookalike": "=?utf-8?q?not_really?=",
    }
    for subject in ("[TK #1] Printer on fire", "Drucker brennt — ✓", "x" * 120):
        message = mail(subject, **odd)
        assert isinstance(message.policy, _PlainHeaders)
        fast = [message.as_bytes(), message.as_bytes(policy=message.policy.clone(linesep="\r\n"))]
        _with_policy(message, compat32)
        assert fast == [message.as_bytes(), message.as_bytes(policy=SMTP_COMPAT32)]


@pytest.mark.parametrize(
    "value", ["café ✓", "a\tb", " leading", "=?utf-8?q?x?=", "word " * 14, "x" * 100, ""]
)
def test_plain_headers_fold_any_value_as_compat32_does(value: str) -> None:
    for linesep in ("\n", "\r\n"):
        fast, general = _PLAIN_HEADERS.clone(linesep=linesep), compat32.clone(linesep=linesep)
        assert fast.fold("X-Value", value) == general.fold("X-Value", value)


def test_plain_headers_still_refuse_an_injected_header() -> None:
    for policy in (_PLAIN_HEADERS, compat32):
        with pytest.raises(HeaderParseError):
            policy.fold("Subject", "Hi\nBcc: evil@example.com")
