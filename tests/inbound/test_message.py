"""Reading messages: reply layouts of real clients, HTML-only mail, format=flowed, charsets and
broken input. Pure parsing (no database)."""

from __future__ import annotations

import base64
import re

import pytest

from tekudasai.inbound.message import Unparseable, new_ticket_text, parse, reply_text
from tekudasai.inbound.service import summary_of
from tests.inbound.conftest import (
    APPLE_MAIL_REPLY,
    GMAIL_HTML_ONLY,
    GMAIL_REPLY,
    OUTLOOK_ORIGINAL_MESSAGE,
    OUTLOOK_REPLY,
    PNG,
    THUNDERBIRD_REPLY,
    build,
)


@pytest.mark.parametrize(
    ("layout", "expected", "quoted"),
    [
        (GMAIL_REPLY, "Thanks, restarting it worked.", "please restart"),
        (OUTLOOK_REPLY, "Yes, the error is back since this morning.", "please restart"),
        (APPLE_MAIL_REPLY, "It still does not print.", "please restart"),
        (THUNDERBIRD_REPLY, "Here is what the display says: E-42.", "please restart"),
        (OUTLOOK_ORIGINAL_MESSAGE, "Please see below, the same again.", "please restart"),
    ],
    ids=["gmail", "outlook", "apple-mail", "thunderbird", "outlook-original-message"],
)
def test_reply_layouts_keep_only_the_new_text(layout: str, expected: str, quoted: str) -> None:
    mail = parse(build(sender="alice@example.com", body=layout))
    reply = reply_text(mail.text)
    assert reply.startswith(expected)
    assert quoted not in reply.lower()
    # Signatures go too: Outlook's closing, the "Sent from my iPhone", Thunderbird's "-- ".
    assert "ACME" not in reply and "iPhone" not in reply and "Bob" not in reply


def test_our_own_fallbacks_cut_what_the_parser_leaves() -> None:
    text = "Short answer: yes.\n\n> quoted line one\n> quoted line two\n\nAnd one more thing."
    assert reply_text(text) == "Short answer: yes.\n\nAnd one more thing."
    german = "Danke!\n\nAm 01.12.2026 um 10:02 schrieb Support <support@desk.example>:\n> Hallo"
    assert reply_text(german) == "Danke!"


def test_html_only_mail_becomes_text_without_the_quote() -> None:
    raw = (
        b"From: Alice <alice@example.com>\r\nSubject: Scanner\r\nMessage-ID: <h1@example.com>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n"
        + GMAIL_HTML_ONLY.encode()
    )
    mail = parse(raw)
    assert "<div" not in mail.text and "scanner" in mail.text
    reply = reply_text(mail.text)
    assert reply.startswith("The scanner jams too.")
    assert "restart" not in reply


OUTLOOK_HTML = (
    '<html><body><div class="WordSection1"><p class="MsoNormal">The new driver did not help.'
    '<o:p></o:p></p><p class="MsoNormal">Regards,<br>Alice</p></div>'
    '<div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1">'
    '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif"><b>From:</b> Te Kudasai'
    " Support &lt;support@desk.example&gt;<br><b>Sent:</b> Monday, December 1, 2026 10:02<br>"
    "<b>To:</b> Alice &lt;alice@example.com&gt;<br><b>Subject:</b> [TK #1] Printer</font>"
    "<div>&nbsp;</div></div><div><p>Please restart the printer.</p></div></body></html>"
)
APPLE_HTML = (
    '<html><body dir="auto">It works now, thanks!<br><br><div dir="ltr">Sent from my iPhone'
    '</div><div dir="ltr"><br><blockquote type="cite">On 1 Dec 2026, at 10:02, Support '
    '&lt;support@desk.example&gt; wrote:<br><br></blockquote></div><blockquote type="cite">'
    '<div dir="ltr">Please restart the printer.</div></blockquote></body></html>'
)


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (GMAIL_HTML_ONLY, "The scanner jams too."),
        (OUTLOOK_HTML, "The new driver did not help."),
        (APPLE_HTML, "It works now, thanks!"),
    ],
    ids=["gmail-html", "outlook-html", "apple-mail-html"],
)
def test_html_reply_layouts(html: str, expected: str) -> None:
    raw = (
        b"From: Alice <alice@example.com>\r\nSubject: Re\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=UTF-8\r\n\r\n" + html.encode()
    )
    text = parse(raw).text
    assert not re.search(r"</?(html|body|div|p|br|b|font|hr|blockquote)\b", text)
    assert all(line == line.rstrip() for line in text.split("\n"))
    reply = reply_text(text)
    assert reply.startswith(expected) and "restart" not in reply.lower()


def test_plain_part_is_preferred_over_html() -> None:
    mail = parse(build(sender="a@example.com", body="plain words", html="<p>html <b>words</b></p>"))
    assert mail.text.strip() == "plain words"
    assert mail.attachments == []  # the HTML alternative is not an attachment


def test_format_flowed_is_joined() -> None:
    raw = (
        b"From: a@example.com\r\nSubject: flowed\r\nMessage-ID: <f1@example.com>\r\n"
        b"Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\r\n\r\n"
        b"This is one long para \r\ngraph that was wrap \r\nped.\r\n\r\n"
        b" >not a quote (space-stuffed)\r\n"
        b"> quoted soft \r\n> line\r\n"
    )
    text = parse(raw).text
    assert "This is one long paragraph that was wrapped." in text
    assert ">not a quote (space-stuffed)" in text
    assert "> quoted softline" in text  # delsp=yes: the space before the break goes
    plain = parse(raw.replace(b"; delsp=yes", b"")).text
    assert "This is one long para graph that was wrap ped." in plain


@pytest.mark.parametrize(
    ("charset", "words"),
    [
        ("iso-8859-1", "Café crème, naïve façade"),
        ("shift_jis", "プリンターが壊れました。至急お願いします。"),
        ("iso-2022-jp", "プリンターが壊れました。"),
        ("windows-1252", "“quoted” \u2013 dash €"),
    ],
)
def test_declared_charsets_are_decoded(charset: str, words: str) -> None:
    body = base64.encodebytes(words.encode(charset))
    subject = "=?" + charset + "?B?" + base64.b64encode(words[:8].encode(charset)).decode() + "?="
    raw = (
        f"From: Tanaka <tanaka@example.jp>\r\nSubject: {subject}\r\n"
        f"Message-ID: <c1@example.jp>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset={charset}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + body
    mail = parse(raw)
    assert mail.text.strip() == words
    assert mail.subject == words[:8]


def test_unknown_or_missing_charset_falls_back_to_utf8() -> None:
    raw = (
        "From: a@example.com\r\nSubject: x\r\nMessage-ID: <u1@example.com>\r\n"
        "Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nGrüße"
    ).encode()
    assert parse(raw).text.strip() == "Grüße"
    undeclared = "From: a@example.com\r\nSubject: x\r\n\r\nGrüße aus Köln".encode()
    assert parse(undeclared).text.strip() == "Grüße aus Köln"


def test_headers_with_nul_and_broken_encodings_are_readable() -> None:
    raw = (
        b"From: =?utf-8?q?Al=00ice?= <alice@example.com>\r\n"
        b"Subject: =?utf-8?B?broken-base64!!?= \x00 tail \xff\xfe raw\r\n"
        b"Message-ID: <bad\x00id@example.com>\r\n"
        b"In-Reply-To: =?unknown-charset?q?x?=\r\n\r\nbody\x00text\r\n"
    )
    mail = parse(raw)
    for text in (mail.subject, mail.sender_name, mail.text, mail.message_id):
        assert "\x00" not in text
        text.encode("utf-8")  # storable: no lone surrogates
    assert mail.sender == "alice@example.com"
    assert "tail" in mail.subject and "bodytext" in mail.text


def test_message_id_is_kept_or_derived_from_the_content() -> None:
    assert parse(build(sender="a@example.com", message_id="<abc@x>")).message_id == "<abc@x>"
    raw = b"From: a@example.com\r\nSubject: no id\r\n\r\nhello"
    first, again = parse(raw).message_id, parse(raw).message_id
    assert first == again and first.endswith("@inbound.tekudasai.invalid>")
    assert parse(raw + b"!").message_id != first


def test_threading_headers_are_read_newest_first() -> None:
    mail = parse(
        build(
            sender="a@example.com",
            in_reply_to="<three@x>",
            references="<one@x> <two@x> <three@x>",
        )
    )
    assert mail.thread_ids == ["<three@x>", "<two@x>", "<one@x>"]


@pytest.mark.parametrize(
    "raw",
    [b"", b"   \r\n", b"\x00\x01\x02 binary junk \xff" * 10, b"Subject: no sender\r\n\r\nhello"],
    ids=["empty", "blank", "binary", "no-from"],
)
def test_what_is_not_a_message(raw: bytes) -> None:
    with pytest.raises(Unparseable):
        parse(raw)


def test_malformed_mime_still_yields_text_and_attachments() -> None:
    raw = (
        b"From: a@example.com\r\nSubject: broken\r\nMessage-ID: <mm@example.com>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XYZ"\r\n\r\n'
        b"--XYZ\r\nContent-Type: text/plain\r\n\r\nthe text part\r\n"
        b"--XYZ\r\nContent-Type: image/png; name=shot.png\r\n"
        b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\n"
        + base64.encodebytes(PNG)[:-7]  # cut short: broken padding
        + b"\r\n--XYZ\r\nContent-Type: text/plain\r\n"  # never closed
    )
    mail = parse(raw)
    assert "the text part" in mail.text
    assert [a.filename for a in mail.attachments] == ["shot.png"]


def test_attachments_beyond_the_kept_count_carry_no_bytes() -> None:
    files = [(f"f{i}.txt", "text/plain", b"hello %d" % i) for i in range(30)]
    mail = parse(build(sender="a@example.com", attachments=files), keep_attachments=5)
    assert len(mail.attachments) == 30
    assert [a.data is not None for a in mail.attachments].count(True) == 5
    assert mail.attachments[0].data == b"hello 0"


def test_summary_from_a_subject() -> None:
    assert summary_of("") == "(no subject)"
    assert summary_of("  \t ") == "(no subject)"
    assert summary_of("Re:  line\r\n folded") == "Re: line folded"
    long = summary_of("x" * 10_000)
    assert len(long) == 500 and long.endswith("…")


def test_apple_mail_text_split_around_an_inline_image_is_one_body() -> None:
    image = base64.encodebytes(PNG)
    raw = (
        b"From: a@example.com\r\nSubject: split\r\nMessage-ID: <s1@example.com>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="A"\r\n\r\n'
        b"--A\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nBefore the picture.\r\n"
        b"--A\r\nContent-Type: image/png; name=IMG_1.png\r\nContent-Disposition: inline; "
        b"filename=IMG_1.png\r\nContent-Transfer-Encoding: base64\r\n\r\n" + image + b"\r\n"
        b"--A\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nAfter the picture.\r\n--A--\r\n"
    )
    mail = parse(raw)
    assert "Before the picture." in mail.text and "After the picture." in mail.text
    assert [a.filename for a in mail.attachments] == ["IMG_1.png"]


@pytest.mark.parametrize(
    "marker",
    ["---------- Forwarded message ---------", "Begin forwarded message:"],
    ids=["gmail", "apple-mail"],
)
def test_a_forwarded_request_stays_whole_in_a_new_ticket(marker: str) -> None:
    text = (
        "Can you look at this?\n\n"
        f"{marker}\nFrom: Billing <billing@vendor.example>\nDate: Mon, 1 Dec 2026\n"
        "Subject: Invoice overdue\n\nYour invoice 42 is overdue.\n"
    )
    whole = new_ticket_text(text)
    assert whole.startswith("Can you look at this?") and "Your invoice 42 is overdue." in whole
    assert new_ticket_text(GMAIL_REPLY) == "Thanks, restarting it worked."
