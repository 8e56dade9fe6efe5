"""Mail that must never open a ticket or a comment: auto-replies, bulk mail, bounces, our own.

Each check answers the reason it refuses a message (logged), or None. List-Id alone is not a
reason: a support address behind a mailing-list or group (Google Groups, Mailman) receives
every customer's mail with one; newsletters say `Precedence: bulk` and are caught by that.
"""

from __future__ import annotations

from email.utils import getaddresses

from tekudasai.inbound.message import ParsedMail

BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
REPORT_TYPES = frozenset({"multipart/report", "message/delivery-status"})
# Local parts that only ever send bounces and other machine mail.
MACHINE_SENDERS = frozenset({"mailer-daemon", "postmaster"})


def _address(value: str) -> str:
    for _name, address in getaddresses([value]):
        if "@" in address:
            return address.strip().lower()
    return value.strip().lower()


def loop_reason(mail: ParsedMail, *, own_addresses: frozenset[str]) -> str | None:
    """Why this message is machine mail we must not answer or file, or None."""
    auto = mail.header("auto-submitted")
    if auto is not None and auto.split(";", 1)[0].strip().lower() not in ("", "no"):
        return f"Auto-Submitted: {auto[:40]}"
    for name in ("x-autoreply", "x-autorespond"):
        if mail.header(name) is not None:
            return f"{name} header"
    precedence = (mail.header("precedence") or "").strip().lower()
    if precedence in BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    return_path = mail.header("return-path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        return "empty Return-Path (a bounce)"
    if mail.content_type in REPORT_TYPES:
        return "a delivery or read report"
    if not mail.sender:
        return "no usable From address"
    sender = mail.sender.lower()
    if sender.split("@", 1)[0] in MACHINE_SENDERS:
        return "sent by a mail system (bounce)"
    if sender in own_addresses:
        return "sent from our own address"
    for loop in mail.header_values("x-loop"):
        if _address(loop) in own_addresses:
            return "X-Loop names our own address"
    return None


def sender_unverified(mail: ParsedMail) -> bool:
    """The receiving MTA found the From forged (DMARC failed): never trust it as a person."""
    return any("dmarc=fail" in v.lower() for v in mail.header_values("authentication-results"))


def own_addresses(*values: str | None) -> frozenset[str]:
    return frozenset(_address(v) for v in values if v and "@" in v)
