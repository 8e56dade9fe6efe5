"""The type of an upload, decided from its bytes (fed in chunks while they stream by)."""

from __future__ import annotations

import codecs
import hashlib
import re

HEAD_BYTES = 64
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
# mif1/msf1 are generic HEIF brands (AVIF uses them too): HEIC only with a HEIC compatible brand.
HEIF_GENERIC = frozenset({b"mif1", b"msf1"})
# Text may hold tab, newline, form feed and carriage return; other control characters mean binary.
BINARY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _is_heic(head: bytes) -> bool:
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    box_size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    if major in HEIC_BRANDS:
        return True
    if major not in HEIF_GENERIC:
        return False
    compatible = head[16 : min(box_size, len(head))]
    return any(compatible[i : i + 4] in HEIC_BRANDS for i in range(0, len(compatible) - 3, 4))


class Sniffer:
    """Accumulates the head, the sha256, and whether everything so far is UTF-8 text."""

    def __init__(self) -> None:
        self.head = b""
        self.size = 0
        self.sha256 = hashlib.sha256()
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._text = True

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self.size += len(data)
        self.sha256.update(data)
        if self._text:
            self._check_text(data, final=False)

    def _check_text(self, data: bytes, *, final: bool) -> None:
        try:
            decoded = self._decoder.decode(data, final=final)
        except UnicodeDecodeError:
            self._text = False
            return
        if BINARY_CONTROL.search(decoded):
            self._text = False

    def mime_type(self) -> str | None:
        """The detected type, or None when the bytes are none of the accepted kinds."""
        head = self.head
        if head.startswith(b"\xff\xd8\xff"):
            return "image/jpeg"
        if head.startswith(PNG_SIGNATURE):
            return "image/png"
        if head.startswith(b"%PDF-"):
            return "application/pdf"
        if _is_heic(head):
            return "image/heic"
        if self._text:
            self._check_text(b"", final=True)
        return "text/plain" if self._text and self.size else None
