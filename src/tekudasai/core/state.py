"""Process-wide services hung on `app.state`, reachable from requests through dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher

# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def` in the
# thread pool, a hop that costs far more than these attribute reads.


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_cipher(request: Request) -> PiiCipher:
    return request.app.state.cipher  # type: ignore[no-any-return]


AppSettings = Annotated[Settings, Depends(get_app_settings)]
Cipher = Annotated[PiiCipher, Depends(get_cipher)]
