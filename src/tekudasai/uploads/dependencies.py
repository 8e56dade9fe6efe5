"""The storage of this process, reachable from requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tekudasai.config import Settings
from tekudasai.uploads.storage import LocalStorage, Storage


def storage_for(settings: Settings) -> Storage:
    return LocalStorage(settings.uploads_dir)


async def get_storage(request: Request) -> Storage:
    # async although it does not await: FastAPI runs a plain def in the thread pool.
    storage = getattr(request.app.state, "upload_storage", None)
    if storage is None:
        storage = request.app.state.upload_storage = storage_for(request.app.state.settings)
    return storage  # type: ignore[no-any-return]


UploadStorage = Annotated[Storage, Depends(get_storage)]
