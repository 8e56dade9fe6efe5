"""The local storage and the sniffer on their own (no HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tekudasai.uploads.service import clean_filename
from tekudasai.uploads.sniff import Sniffer
from tekudasai.uploads.storage import LocalStorage
from tests.uploads.conftest import HEIC, JPEG, PDF, PNG, TEXT, WINDOWS_EXE


async def test_keys_are_opaque_and_paths_cannot_be_chosen(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "uploads")
    writer = await storage.create()
    await writer.write(b"hello")
    await writer.commit()
    assert len(writer.key) == 32 and set(writer.key) <= set("0123456789abcdef")
    chunks = await storage.open(writer.key)
    assert b"".join([c async for c in chunks]) == b"hello"
    for bad in ("../../etc/passwd", "/etc/passwd", "A" * 32, writer.key + "/.."):
        with pytest.raises(ValueError):
            storage.path_of(bad)
    await storage.delete(writer.key)
    with pytest.raises(FileNotFoundError):
        await storage.open(writer.key)


async def test_abort_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "uploads")
    writer = await storage.create()
    await writer.write(b"x" * 600_000)
    await writer.abort()
    await writer.abort()
    assert storage.all_files() == []


@pytest.mark.parametrize(
    ("chunks", "mime"),
    [
        ([JPEG], "image/jpeg"),
        ([PNG[:3], PNG[3:]], "image/png"),
        ([HEIC], "image/heic"),
        ([PDF], "application/pdf"),
        ([TEXT[:2], TEXT[2:3], TEXT[3:]], "text/plain"),  # a character split across chunks
        ([WINDOWS_EXE], None),
        ([b""], None),
    ],
)
def test_sniffer(chunks: list[bytes], mime: str | None) -> None:
    sniffer = Sniffer()
    for chunk in chunks:
        sniffer.feed(chunk)
    assert sniffer.mime_type() == mime
    assert sniffer.size == sum(map(len, chunks))


def test_clean_filename() -> None:
    assert clean_filename("C:\\Users\\me\\Desktop\\report.pdf") == "report.pdf"
    assert clean_filename("../../.bashrc") == "bashrc"
    assert clean_filename("x" * 300 + ".txt").endswith(".txt")
    assert len(clean_filename("x" * 300 + ".txt")) == 255
    assert clean_filename("tab\there.txt") == "tab_here.txt"
    assert clean_filename("") == "file"
