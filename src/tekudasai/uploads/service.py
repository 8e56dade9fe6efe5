"""Uploads: store a streamed file, authorise downloads, clean orphans."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from sqlalchemy import delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.errors import PayloadTooLarge, ValidationFailed
from tekudasai.core.ids import new_id
from tekudasai.tickets.models import Ticket
from tekudasai.uploads import multipart
from tekudasai.uploads.errors import UnsupportedFileType, UploadNotFound
from tekudasai.uploads.models import TicketUpload, Upload
from tekudasai.uploads.sniff import Sniffer
from tekudasai.uploads.storage import Storage

MAX_NAME = 255
_UNSAFE_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f\"<>|:*?]")


def upload_view(upload: Upload) -> dict[str, Any]:
    """The contract's upload object (also what a `file-upload` answer stores)."""
    return {
        "filename": upload.id,
        "originalName": upload.original_name,
        "url": f"/api/uploads/{upload.id}",
        "size": upload.size,
        "mimeType": upload.mime_type,
    }


async def uploads_of(
    db: AsyncSession, *, ids: Iterable[str], uploader_ids: Iterable[str]
) -> dict[str, Upload]:
    """The uploads among `ids` that one of `uploader_ids` uploaded, by id (one query)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    # FOR KEY SHARE: `uploads clean` cannot remove an upload a ticket is being filed with.
    rows = await db.scalars(
        select(Upload)
        .where(Upload.id.in_(wanted), Upload.uploader_id.in_(list(dict.fromkeys(uploader_ids))))
        .with_for_update(read=True, key_share=True)
    )
    return {upload.id: upload for upload in rows}


def clean_filename(raw: str) -> str:
    """A display name only (never a path): the last path segment, without control characters."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    # Format characters (e.g. right-to-left override) can disguise "exe.png" as "gnp.exe".
    name = "".join(c for c in name if unicodedata.category(c) != "Cf")
    name = _UNSAFE_NAME_CHARS.sub("_", name).strip().strip(".")
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) < 16 else name
        name = name[:MAX_NAME]
    return name or "file"


async def save_upload(
    db: AsyncSession,
    *,
    storage: Storage,
    chunks: AsyncIterable[bytes],
    content_type: str,
    uploader_id: str,
    max_bytes: int,
) -> dict[str, Any]:
    """Stream the multipart field `file` into storage, check size and type, record it."""
    writer = await storage.create()
    sniffer = Sniffer()

    async def write(data: bytes) -> None:
        sniffer.feed(data)
        if sniffer.size > max_bytes:
            raise PayloadTooLarge(
                f"The file is larger than the {max_bytes // (1024 * 1024)} MiB limit."
            )
        await writer.write(data)

    try:
        filename = await multipart.read_file_field(chunks, content_type, field="file", write=write)
        if sniffer.size == 0:
            raise ValidationFailed(
                "The file is empty.", errors=[{"field": "file", "message": "The file is empty"}]
            )
        mime_type = sniffer.mime_type()
        if mime_type is None:
            raise UnsupportedFileType()
        await writer.commit()
        upload = Upload(
            id=new_id(),
            uploader_id=uploader_id,
            original_name=clean_filename(filename),
            mime_type=mime_type,
            size=sniffer.size,
            sha256=sniffer.sha256.hexdigest(),
            storage_key=writer.key,
        )
        db.add(upload)
        await db.flush()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await writer.abort()
        raise
    return upload_view(upload)


async def downloadable(db: AsyncSession, *, upload_id: str, user_id: str, is_staff: bool) -> Upload:
    """The upload if this person may read it (uploader, reporter of a ticket using it, staff)."""
    query = select(Upload).where(Upload.id == upload_id)
    if not is_staff:
        via_ticket = (
            exists()
            .where(TicketUpload.upload_id == Upload.id)
            .where(Ticket.id == TicketUpload.ticket_id, Ticket.reporter_id == user_id)
        )
        query = query.where(or_(Upload.uploader_id == user_id, via_ticket))
    upload = await db.scalar(query)
    if upload is None:
        raise UploadNotFound()
    return upload


@dataclass
class CleanResult:
    uploads: int
    bytes: int
    stray_files: int


async def clean_orphans(
    db: AsyncSession, *, storage: Storage, older_than: timedelta
) -> tuple[CleanResult, list[str]]:
    """Delete the rows of uploads older than `older_than` that no ticket references; answer the
    storage keys to remove once that is committed (theirs, and files that have no row at all)."""
    cutoff = datetime.now(UTC) - older_than
    # SKIP LOCKED: an upload a ticket is being filed with right now is left for the next run.
    victims = (
        await db.execute(
            select(Upload.id, Upload.storage_key, Upload.size)
            .where(
                Upload.created_at < cutoff,
                ~exists().where(TicketUpload.upload_id == Upload.id),
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    if victims:
        await db.execute(delete(Upload).where(Upload.id.in_([v.id for v in victims])))
    await db.flush()
    # The victims' own keys are not stray: they are counted (and removed) as uploads already.
    known = set(await db.scalars(select(Upload.storage_key))) | {v.storage_key for v in victims}
    stray = [
        key for key in await storage.stray_keys(older_than=cutoff.timestamp()) if key not in known
    ]
    return CleanResult(
        uploads=len(victims), bytes=sum(v.size for v in victims), stray_files=len(stray)
    ), [v.storage_key for v in victims] + stray
