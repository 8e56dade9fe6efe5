"""Uploads over HTTP on real PostgreSQL: types from bytes, limits, names, download rights."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.tickets.models import Ticket
from tekudasai.uploads.models import TicketUpload, Upload
from tests.factories import Person, make_form
from tests.uploads.conftest import (
    ELF,
    HEIC,
    HEIF_GENERIC,
    JPEG,
    PDF,
    PNG,
    TEXT,
    WINDOWS_EXE,
    upload,
    uploaded,
)

MiB = 1024 * 1024


async def upload_rows(database: Database) -> int:
    async with database.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(Upload)) or 0)


def stored_files(settings: Settings) -> list[Path]:
    root = settings.uploads_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def files_outside(root: Path, data_dir: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_relative_to(data_dir)]


@pytest.mark.parametrize(
    ("content", "name", "mime"),
    [
        (JPEG, "photo.jpg", "image/jpeg"),
        (PNG, "shot.png", "image/png"),
        (HEIC, "IMG_0001.HEIC", "image/heic"),
        (PDF, "invoice.pdf", "application/pdf"),
        (TEXT, "notes.txt", "text/plain"),
        (PNG, "misnamed.txt", "image/png"),
        (TEXT, "looks-like.pdf", "text/plain"),
    ],
)
async def test_accepted_types_are_decided_from_bytes(
    client: httpx.AsyncClient,
    uploader: Person,
    database: Database,
    settings: Settings,
    content: bytes,
    name: str,
    mime: str,
) -> None:
    data = await uploaded(client, uploader, content, name)
    assert data == {
        "filename": data["filename"],
        "originalName": name,
        "url": f"/api/uploads/{data['filename']}",
        "size": len(content),
        "mimeType": mime,
    }
    async with database.sessionmaker() as db:
        row = await db.get(Upload, data["filename"])
    assert row is not None and row.uploader_id == uploader.user.id
    assert row.sha256 == hashlib.sha256(content).hexdigest()
    files = stored_files(settings)
    assert len(files) == 1 and files[0].name == row.storage_key
    assert files[0].read_bytes() == content
    assert name not in str(files[0]) and data["filename"] not in str(files[0])


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (WINDOWS_EXE, "cute-cat.png"),
        (ELF, "cute-cat.png"),
        (HEIF_GENERIC.replace(b"heic" + b"\x00", b"avif\x00"), "x.heic"),
        (b"GIF89a" + b"\x00" * 32, "anim.gif"),
        (b"\xff\xfe\x00\x00bad utf", "text.txt"),
        (b"text with a NUL \x00 inside", "text.txt"),
    ],
)
async def test_other_bytes_are_refused_and_nothing_stays(
    client: httpx.AsyncClient,
    uploader: Person,
    database: Database,
    settings: Settings,
    content: bytes,
    name: str,
) -> None:
    response = await upload(client, uploader, content, name)
    assert response.status_code == 415
    assert response.json()["code"] == "UNSUPPORTED_FILE_TYPE"
    assert await upload_rows(database) == 0
    assert stored_files(settings) == []


async def test_generic_heif_with_heic_brand_is_heic(
    client: httpx.AsyncClient, uploader: Person
) -> None:
    assert (await uploaded(client, uploader, HEIF_GENERIC, "a.heif"))["mimeType"] == "image/heic"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\system32\\evil.txt", "evil.txt"),
        ("/absolute/path/notes.txt", "notes.txt"),
        ("..", "file"),
        ("report\u202etxt.exe", "reporttxt.exe"),
        ("a<b>c|d:e.txt", "a_b_c_d_e.txt"),
    ],
)
async def test_path_traversal_names_never_become_paths(
    client: httpx.AsyncClient,
    uploader: Person,
    settings: Settings,
    tmp_path: Path,
    sent: str,
    kept: str,
) -> None:
    data = await uploaded(client, uploader, TEXT, sent)
    assert data["originalName"] == kept
    files = stored_files(settings)
    assert len(files) == 1
    assert files[0].resolve().is_relative_to(settings.uploads_dir.resolve())
    assert files_outside(tmp_path, settings.data_dir) == []


async def test_eleven_megabytes_is_too_large_and_leaves_nothing(
    client: httpx.AsyncClient, uploader: Person, database: Database, settings: Settings
) -> None:
    big = b"a" * (11 * MiB)
    response = await upload(client, uploader, big, "big.txt")
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"

    # Without a Content-Length the limit is enforced while the body streams in.
    boundary = "tk-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(11):
            yield b"a" * MiB
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = await client.post(
        "/api/uploads",
        content=body(),
        headers={**uploader.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert await upload_rows(database) == 0
    assert stored_files(settings) == []

    just_fits = await upload(client, uploader, b"a" * (10 * MiB), "fits.txt")
    assert just_fits.status_code == 200 and just_fits.json()["data"]["size"] == 10 * MiB
    over_by_one = await upload(client, uploader, b"a" * (10 * MiB + 1), "over.txt")
    assert over_by_one.status_code == 413
    assert await upload_rows(database) == 1
    assert len(stored_files(settings)) == 1


async def test_malformed_requests(
    client: httpx.AsyncClient, uploader: Person, database: Database, settings: Settings
) -> None:
    empty = await upload(client, uploader, b"", "empty.txt")
    assert empty.status_code == 400 and empty.json()["code"] == "VALIDATION_ERROR"
    other_field = await client.post(
        "/api/uploads", files={"attachment": ("a.txt", TEXT)}, headers=uploader.auth
    )
    assert other_field.status_code == 400
    assert other_field.json()["errors"][0]["field"] == "file"
    not_multipart = await client.post("/api/uploads", json={"file": "x"}, headers=uploader.auth)
    assert not_multipart.status_code == 400
    plain_field = await client.post("/api/uploads", data={"file": "x"}, headers=uploader.auth)
    assert plain_field.status_code == 400
    anonymous = await client.post("/api/uploads", files={"file": ("a.txt", TEXT)})
    assert anonymous.status_code == 401
    assert await upload_rows(database) == 0
    assert stored_files(settings) == []


async def _ticket_with(database: Database, admin: Person, reporter: Person, upload_id: str) -> int:
    form = await make_form(
        database, admin, name="F", elements=[{"type": "file-upload", "name": "f", "label": "F"}]
    )
    async with database.sessionmaker() as db, db.begin():
        ticket = Ticket(
            reporter_id=reporter.user.id,
            summary="with file",
            form_id=form["id"],
            form_version=1,
            form_response={},
        )
        db.add(ticket)
        await db.flush()
        db.add(TicketUpload(ticket_id=ticket.id, upload_id=upload_id))
        return ticket.id


async def test_download_rights(
    client: httpx.AsyncClient,
    uploader: Person,
    stranger: Person,
    agent: Person,
    admin: Person,
    database: Database,
) -> None:
    data = await uploaded(client, uploader, TEXT, "Grüße notes.txt")
    for person in (uploader, agent, admin):
        response = await client.get(data["url"], headers=person.auth)
        assert response.status_code == 200
        assert response.content == TEXT
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        assert "filename*=UTF-8''Gr%C3%BC%C3%9Fe%20notes.txt" in disposition
    denied = await client.get(data["url"], headers=stranger.auth)
    assert denied.status_code == 404 and denied.json()["code"] == "NOT_FOUND"
    assert (await client.get(data["url"])).status_code == 401
    assert (await client.get("/api/uploads/nope", headers=admin.auth)).status_code == 404

    await _ticket_with(database, admin, stranger, data["filename"])
    allowed = await client.get(f"/api/v1/uploads/{data['filename']}", headers=stranger.auth)
    assert allowed.status_code == 200 and allowed.content == TEXT


async def test_another_users_upload_cannot_be_referenced(
    client: httpx.AsyncClient, uploader: Person, stranger: Person, admin: Person
) -> None:
    form = (
        await client.post(
            "/api/forms",
            json={
                "name": "Attach",
                "elements": [{"type": "file-upload", "name": "shot", "label": "Shot"}],
            },
            headers=admin.auth,
        )
    ).json()["data"]
    theirs = await uploaded(client, stranger, PNG, "theirs.png")
    mine = await uploaded(client, uploader, PNG, "mine.png")
    path = f"/api/forms/enabled/{form['id']}/validate"
    for answer in (theirs["filename"], theirs):
        response = await client.post(
            path, json={"formResponse": {"shot": answer}}, headers=uploader.auth
        )
        assert response.status_code == 400
        assert response.json()["code"] == "INVALID_FORM_DATA"
        assert response.json()["errors"] == [{"field": "shot", "message": "Unknown upload"}]
    good = await client.post(
        path, json={"formResponse": {"shot": mine["filename"]}}, headers=uploader.auth
    )
    assert good.status_code == 200
    assert good.json()["data"]["formResponse"] == {"shot": mine}
