"""Uploads: store a streamed file, authorise downloads, link to tickets, clean orphans."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.uploads.models import TicketUpload, Upload


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
    db: AsyncSession, *, ids: Iterable[str], uploader_id: str
) -> dict[str, Upload]:
    """The uploads among `ids` that `uploader_id` uploaded, by id (one query)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    rows = await db.scalars(
        select(Upload).where(Upload.id.in_(wanted), Upload.uploader_id == uploader_id)
    )
    return {upload.id: upload for upload in rows}


async def link_to_ticket(db: AsyncSession, *, ticket_id: int, upload_ids: Iterable[str]) -> None:
    """Make the ticket reference exactly these uploads (replaces earlier links)."""
    await db.execute(delete(TicketUpload).where(TicketUpload.ticket_id == ticket_id))
    rows = [{"ticket_id": ticket_id, "upload_id": uid} for uid in dict.fromkeys(upload_ids)]
    if rows:
        await db.execute(insert(TicketUpload), rows)
