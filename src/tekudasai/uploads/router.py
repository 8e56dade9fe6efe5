"""Uploads API: stream a file in; serve it back, as an attachment, only to those allowed."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from tekudasai.accounts.dependencies import CurrentUser, scopes
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.errors import ValidationFailed
from tekudasai.core.schemas import ERROR_RESPONSES, Envelope, ok
from tekudasai.core.state import AppSettings
from tekudasai.db.session import DbSession
from tekudasai.uploads import service
from tekudasai.uploads.dependencies import UploadStorage
from tekudasai.uploads.errors import UploadNotFound
from tekudasai.uploads.responses import UploadOut

router = APIRouter(
    prefix="/uploads", tags=["uploads"], responses=ERROR_RESPONSES, route_class=DirectRoute
)


@router.post("", openapi_extra=scopes("tickets:write"), response_model=Envelope[UploadOut])
async def upload_file(
    request: Request,
    db: DbSession,
    user: CurrentUser,
    storage: UploadStorage,
    settings: AppSettings,
) -> dict[str, Any]:
    """Multipart field `file`; answers the upload object a `file-upload` answer refers to."""
    try:
        view = await service.save_upload(
            db,
            storage=storage,
            chunks=request.stream(),
            content_type=request.headers.get("content-type", ""),
            uploader_id=user.user.id,
            max_bytes=settings.max_upload_mb * 1024 * 1024,
        )
    except ClientDisconnect:
        # The partial file is already gone; nobody is left to read an answer, nor a traceback.
        raise ValidationFailed("The upload was interrupted.") from None
    return ok(view)


def _disposition(name: str) -> str:
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get(
    "/{upload_id}",
    openapi_extra=scopes("tickets:read"),
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file, as an attachment",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def download_file(
    upload_id: str, db: DbSession, user: CurrentUser, storage: UploadStorage
) -> StreamingResponse:
    upload = await service.downloadable(
        db, upload_id=upload_id, user_id=user.user.id, is_staff=user.is_staff
    )
    try:
        chunks = await storage.open(upload.storage_key)
    except FileNotFoundError:
        raise UploadNotFound() from None
    media_type = "text/plain; charset=utf-8" if upload.mime_type == "text/plain" else None
    return StreamingResponse(
        chunks,
        media_type=media_type or upload.mime_type,
        headers={
            "Content-Disposition": _disposition(upload.original_name),
            "Content-Length": str(upload.size),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )
