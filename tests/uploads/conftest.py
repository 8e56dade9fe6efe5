"""Fixtures of the uploads tests: people, sample files of each accepted type, an upload helper."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import Person, person_fixture

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
HEIF_GENERIC = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic" + b"\x00" * 64
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
TEXT = "Grüße, 世界!\r\n\tline two\n".encode()
WINDOWS_EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64


uploader = person_fixture("user")
stranger = person_fixture("user")
agent = person_fixture("agent")
admin = person_fixture("admin")


async def upload(
    client: httpx.AsyncClient, person: Person, content: bytes, filename: str = "file.bin"
) -> httpx.Response:
    return await client.post(
        "/api/uploads",
        files={"file": (filename, content, "application/octet-stream")},
        headers=person.auth,
    )


async def uploaded(
    client: httpx.AsyncClient, person: Person, content: bytes, filename: str = "file.bin"
) -> dict[str, Any]:
    response = await upload(client, person, content, filename)
    assert response.status_code == 200, response.text
    return response.json()["data"]
