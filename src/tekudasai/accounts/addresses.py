"""E-mail addresses: syntax, the stored form, and refusing look-alikes at sign-up.

A new address is refused when it could pass for another one (Unicode TR #39 ideas):
- a part (the local part, or a domain label, punycode decoded) mixes scripts, other than the
  combinations Japanese, Chinese and Korean writing use with Latin ("Highly Restrictive");
- a part in one script is written only with letters that look like ASCII while the rest of
  the address is Latin (`ape@example.com` spelt with Cyrillic letters that look like a, p, e);
- it holds invisible or compatibility characters (a full-width `a`, a zero-width space).
An address all in one non-Latin script (`админ@…`, `δοκιμή@…`, `用户@…`) stays valid.
Script and look-alike data: Unicode's Scripts.txt and confusables.txt, as shipped by the
`confusable-homoglyphs` package.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

from tekudasai.core.errors import ValidationFailed

# Syntax only: internal domains (.local, .internal, a bare company domain) are valid addresses.
EMAIL_PATTERN = re.compile(
    r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)
NEUTRAL_SCRIPTS = frozenset({"COMMON", "INHERITED"})
# UTS #39 "Highly Restrictive": the only script mixes allowed within one part.
ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


def _invalid(message: str = "Invalid e-mail address") -> ValidationFailed:
    return ValidationFailed(f"{message}.", errors=[{"field": "email", "message": message}])


def check_email(email: str) -> str:
    """The address stripped, when its syntax is valid; else 400 VALIDATION_ERROR (`email`)."""
    email = email.strip()
    if len(email) > 254 or not EMAIL_PATTERN.match(email):
        raise _invalid()
    return email


def stored_form(email: str) -> str:
    """What an account keeps (and mails to): the address as typed, lower-cased.

    Not the NFKC/casefold form of the lookup index: that folds `straße` into `strasse`, which
    is another mailbox.
    """
    return email.strip().lower()


@functools.cache
def _data() -> tuple[Any, Any]:
    # Loaded on first use: about 1 MB of JSON that only sign-ups need.
    from confusable_homoglyphs import categories, confusables

    return categories, confusables


def _script(char: str) -> str:
    return str(_data()[0].alias(char))


def _looks_ascii(char: str) -> bool:
    """`char` has an ASCII look-alike in Unicode's confusables data."""
    if char.isascii():
        return True
    found = _data()[1].confusables_data.get(char) or []
    return any(entry["c"].isascii() for entry in found)


def _parts(email: str) -> list[str]:
    local, _, domain = email.rpartition("@")
    labels = []
    for label in domain.split("."):
        if label.lower().startswith("xn--"):
            try:
                label = label.lower().encode("ascii").decode("idna")
            except UnicodeError:
                raise _invalid() from None
        labels.append(label)
    return [local, *labels]


def imitation_reason(email: str) -> str | None:
    """Why `email` could pass for another address, or None when it cannot."""
    for char in email:
        kind = unicodedata.category(char)
        if kind in ("Cs", "Cn", "Co"):  # surrogates, unassigned, private use
            return "Invalid e-mail address"
        if kind[0] in "CZ":
            return "E-mail address contains invisible characters"
    if unicodedata.normalize("NFKC", email) != unicodedata.normalize("NFC", email):
        return "E-mail address contains look-alike characters (such as full-width letters)"
    parts = _parts(email)
    scripts = [{_script(c) for c in part} - NEUTRAL_SCRIPTS for part in parts]
    for used in scripts:
        if len(used) > 1 and not any(used <= allowed for allowed in ALLOWED_MIXES):
            return "E-mail address mixes alphabets (e.g. Cyrillic and Latin letters)"
    everywhere = set().union(*scripts)
    if "LATIN" in everywhere and len(everywhere) > 1:
        for part, used in zip(parts, scripts, strict=True):
            if used and "LATIN" not in used and all(_looks_ascii(c) for c in part):
                return "E-mail address imitates a Latin address with letters of another alphabet"
    return None


def check_new_email(email: str) -> str:
    """Syntax, then refuse look-alikes: for addresses of new accounts."""
    email = check_email(email)
    reason = imitation_reason(email)
    if reason is not None:
        raise _invalid(reason)
    return email
