"""Reading one RFC 5322 message: headers, the reply text, the attachments.

Everything here is pure (no database): it turns bytes into a `ParsedMail` or says why it
cannot (`Unparseable`). The standard library's parser never gives up on bad input, so the
work is in being careful with what it hands back: headers with NUL or broken encoded words,
undeclared or unknown charsets, `format=flowed`, HTML-only mail, and quoted history.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any

from mailparser_reply import EmailReplyParser

MAX_MESSAGE_BYTES = 35 * 1024 * 1024
# The reply text is cut from at most this much of the body (a comment holds 20,000).
MAX_TEXT = 100_000
MAX_HTML = 1_000_000
MAX_HEADER = 2_000
MAX_IDS = 50
MAX_MESSAGE_ID = 900

_MSGID = re.compile(r"<([^<>\s]{1,900})>")
# Control characters PostgreSQL or a reader should never get (tab and newline stay).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_HEADER_SPACE = re.compile(r"\s+")
# Labels mail clients use that Python's codecs do not know, or know as a narrower set.
_CHARSET_ALIASES = {
    "x-sjis": "cp932",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "ks_c_5601-1987": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso-8859-1": "cp1252",  # what senders mean by it (as browsers read it)
    "latin1": "cp1252",
    "us-ascii": "utf-8",  # 8-bit text labelled ASCII is almost always UTF-8
    "ascii": "utf-8",
    "unknown-8bit": "utf-8",
    "utf8": "utf-8",
}


class Unparseable(Exception):
    """Not a message at all (no header section, no From)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    # None: not decoded (beyond the count we store, only the name is needed).
    data: bytes | None
    size: int


@dataclass
class ParsedMail:
    message_id: str  # with its angle brackets
    sender: str  # the From address ('' when it has none usable)
    sender_name: str
    subject: str
    in_reply_to: list[str]
    references: list[str]
    text: str  # the whole body as text (quotes and all)
    attachments: list[Attachment]
    content_type: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    defects: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        return self.headers.get(name.lower(), [])

    @property
    def thread_ids(self) -> list[str]:
        """Message-IDs this one answers, the most telling first: In-Reply-To, then the
        References from the newest back."""
        ordered = [*self.in_reply_to, *reversed(self.references)]
        return list(dict.fromkeys(ordered))[:MAX_IDS]


def clean_text(value: str) -> str:
    """Text PostgreSQL can store and people can read: no NUL, no lone surrogates, no controls."""
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL.sub("", value)


def _header_text(message: Message, name: str) -> list[str]:
    """Every value of a header, decoded (encoded words, raw 8-bit), one line each."""
    values: list[str] = []
    raw_values: list[Any] = []
    try:
        raw_values = message.get_all(name) or []
    except Exception:  # a header the policy cannot even parse: take its raw text
        raw_values = [v for k, v in message.raw_items() if k.lower() == name.lower()]  # type: ignore[attr-defined]
    for raw in raw_values:
        try:
            text = str(raw)
        except Exception:
            text = ""
        text = clean_text(text)
        values.append(_HEADER_SPACE.sub(" ", text).strip()[:MAX_HEADER])
    return values


def _all_headers(message: Message) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for key in dict.fromkeys(k.lower() for k in message):
        headers[key] = _header_text(message, key)
    return headers


def _message_ids(value: str) -> list[str]:
    return [f"<{m}>" for m in _MSGID.findall(value)]


def _own_message_id(headers: dict[str, list[str]], raw: bytes) -> str:
    for value in headers.get("message-id", []):
        found = _message_ids(value)
        if found:
            return found[0]
        token = value.strip().strip("<>").strip()
        if token and " " not in token and len(token) <= MAX_MESSAGE_ID:
            return f"<{token}>"
    # None given: the content itself names it, so the same bytes delivered twice are one.
    return f"<{hashlib.sha256(raw).hexdigest()[:40]}@inbound.tekudasai.invalid>"


def _sender(headers: dict[str, list[str]]) -> tuple[str, str]:
    for value in headers.get("from", []):
        for name, address in getaddresses([value]):
            address = address.strip()
            if "@" in address and len(address) <= 254 and " " not in address:
                return address, name.strip()[:200]
    return "", ""


def decode_part(part: Message) -> str:
    """A text part's content as text, from whatever charset it declares (or none)."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    declared = (part.get_content_charset() or "utf-8").strip().lower()
    charset = _CHARSET_ALIASES.get(declared, declared)
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    text = payload.decode(charset, errors="replace")
    return clean_text(text.replace("\r\n", "\n").replace("\r", "\n"))


def unflow(text: str, *, delsp: bool) -> str:
    """RFC 3676 `format=flowed`: join soft-broken lines (ending in a space) into paragraphs,
    per quote depth, undoing space-stuffing."""
    out: list[str] = []
    buffer: str | None = None
    depth_of_buffer = 0

    def flush() -> None:
        nonlocal buffer
        if buffer is not None:
            prefix = ">" * depth_of_buffer
            out.append(f"{prefix} {buffer}" if prefix else buffer)
            buffer = None

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        if content == "-- ":  # the signature separator is never flowed
            flush()
            out.append(content)
            continue
        soft = content.endswith(" ")
        if soft and delsp:
            content = content[:-1]
        if buffer is not None and depth == depth_of_buffer:
            buffer += content
        else:
            flush()
            buffer, depth_of_buffer = content, depth
        if not soft:
            flush()
    flush()
    return "\n".join(out)


def html_to_text(html: str) -> str:
    import html2text  # on first use: web workers that never see an HTML-only mail skip it

    converter = html2text.HTML2Text()
    converter.body_width = 0  # no hard wrapping: the web shows the text as it is
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    try:
        text = converter.handle(html[:MAX_HTML])
    except Exception:  # html2text on hostile markup: fall back to the tags stripped
        text = re.sub(r"<[^>]*>", " ", html[:MAX_HTML])
    # html2text ends a <br> line with two spaces (Markdown's line break): plain text has none.
    return clean_text("\n".join(line.rstrip() for line in text.split("\n")))


def _is_text_body(part: Message) -> bool:
    return (
        part.get_content_type() in ("text/plain", "text/html")
        and part.get_content_disposition() != "attachment"
        and not part.get_filename()
    )


def _body_part(message: EmailMessage) -> Message | None:
    try:
        body = message.get_body(preferencelist=("plain", "html"))
    except Exception:
        body = None
    if body is not None:
        return body
    for part in message.walk():  # a structure get_body gives up on: the first text part
        if not part.is_multipart() and _is_text_body(part):
            return part
    return None


def body_text(part: Message | None) -> str:
    if part is None:
        return ""
    text = decode_part(part)
    if part.get_content_type() == "text/html":
        return html_to_text(text)
    if (part.get_param("format") or "").__str__().lower() == "flowed":
        return unflow(text, delsp=str(part.get_param("delsp") or "").lower() == "yes")
    return text


def _split_text_parts(message: EmailMessage, body: Message | None) -> list[Message]:
    """Apple Mail splits a plain body around an inline image into several text/plain parts of
    one multipart/mixed: the body is all of them, in order."""
    if body is None or body.get_content_type() != "text/plain":
        return []
    if message.get_content_type() != "multipart/mixed":
        return []
    try:
        parts = [p for p in message.iter_parts() if p.get_content_type() == "text/plain"]
    except Exception:
        return []
    texts: list[Message] = [p for p in parts if _is_text_body(p)]
    return texts if len(texts) > 1 and body in texts else []


def _filename(part: Message, index: int) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    name = clean_text(str(name)).strip() if name else ""
    if not name:
        subtype = part.get_content_subtype() or "bin"
        name = f"attachment-{index}.{subtype[:10]}"
    return name


def _attachments(message: EmailMessage, body: Message | None, keep: int) -> list[Attachment]:
    """Every part that is not the body nor an alternative of it; bytes for the first `keep`."""
    found: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart() or part is body:
            continue
        if part.get_content_type() == "message/rfc822":
            continue
        if _is_text_body(part):
            continue
        if part.get_content_type() in ("message/delivery-status", "text/rfc822-headers"):
            continue
        data: bytes | None = None
        size = 0
        if len(found) < keep:
            try:
                payload = part.get_payload(decode=True)
            except Exception:
                payload = None
            data = payload if isinstance(payload, bytes) else b""
            size = len(data)
        else:
            raw = part.get_payload()
            size = len(raw) * 3 // 4 if isinstance(raw, str) else 0  # base64 estimate
        found.append(
            Attachment(
                filename=_filename(part, len(found) + 1),
                content_type=part.get_content_type(),
                data=data,
                size=size,
            )
        )
    return found


def parse(raw: bytes, *, keep_attachments: int = 20) -> ParsedMail:
    """Parse one message; Unparseable when it has no header section or no From."""
    if not raw.strip():
        raise Unparseable("empty message")
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; this is only for the truly odd
        raise Unparseable(f"cannot read the message ({type(exc).__name__})") from None
    assert isinstance(message, EmailMessage)
    headers = _all_headers(message)
    if not headers:
        raise Unparseable("no header fields")
    if "from" not in headers:
        raise Unparseable("no From header")
    sender, sender_name = _sender(headers)
    body = _body_part(message)
    split = _split_text_parts(message, body)
    text = "\n".join(body_text(p) for p in split) if split else body_text(body)
    in_reply_to = [i for v in headers.get("in-reply-to", []) for i in _message_ids(v)]
    references = [i for v in headers.get("references", []) for i in _message_ids(v)]
    return ParsedMail(
        message_id=_own_message_id(headers, raw),
        sender=sender,
        sender_name=sender_name,
        subject=(headers.get("subject") or [""])[0],
        in_reply_to=in_reply_to[:MAX_IDS],
        references=references[-MAX_IDS:],
        text=text[: MAX_TEXT * 2],
        attachments=_attachments(message, body, keep_attachments),
        content_type=message.get_content_type(),
        headers=headers,
        defects=[type(d).__name__ for d in message.defects][:20],
    )


# -- the reply without quoted history and signature ------------------------------------------

_REPLY_PARSER = EmailReplyParser(languages=["en", "de", "fr", "es", "it", "nl", "ja"])
_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*(original message|forwarded message|ursprüngliche nachricht)", re.I
)
_WROTE = re.compile(
    r"^\s*(on|am|le|el|il|op)\b.{0,300}\b"
    r"(wrote|schrieb|a écrit|escribió|ha scritto|schreef)\s*:\s*$",
    re.I | re.S,
)
_OUTLOOK_FROM = re.compile(r"^\s*\*?(from|von|de|van)\s*:\*?\s", re.I)
_OUTLOOK_NEXT = re.compile(r"^\s*\*?(sent|date|gesendet|envoyé|enviado|to|an|à|para)\s*:", re.I)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_SIGNATURE = re.compile(r"^-- ?$")
_BLANKS = re.compile(r"\n{3,}")


def _fallback_cut(text: str) -> str:
    """Our own cut after the parser's: the markers of common clients, and `>` blocks."""
    lines = text.split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        pair = line + " " + (lines[i + 1] if i + 1 < len(lines) else "")
        if (
            _ORIGINAL.match(line)
            or _UNDERSCORES.match(line)
            or _SIGNATURE.match(line)
            or _WROTE.match(line)
            or (_WROTE.match(pair) and not line.rstrip().endswith("."))
            or (
                _OUTLOOK_FROM.match(line)
                and any(_OUTLOOK_NEXT.match(n) for n in lines[i + 1 : i + 5])
            )
        ):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    return _BLANKS.sub("\n\n", "\n".join(kept)).strip()


_FORWARDED = re.compile(
    r"^\s*-{2,}\s*(forwarded message|weitergeleitete nachricht|message transféré)"
    r"|^\s*begin forwarded message\s*:",
    re.I | re.M,
)


def new_ticket_text(text: str) -> str:
    """A new ticket's text: a forwarded message is the request itself, so it stays whole;
    anything else is cut like a reply."""
    if _FORWARDED.search(text[:MAX_TEXT]):
        return _BLANKS.sub("\n\n", text[:MAX_TEXT]).strip()
    return reply_text(text)


def reply_text(text: str) -> str:
    """The newest part of a mail's text: quoted history and signature cut."""
    text = text[:MAX_TEXT]
    try:
        replies = _REPLY_PARSER.read(text).replies
        cut = replies[0].body if replies else text
    except Exception:  # a parser failure must not lose the mail: our own cut alone
        cut = text
    return _fallback_cut(cut)
