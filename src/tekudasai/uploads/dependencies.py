"""The storage of this process, reachable from requests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

from fastapi import Depends, Request

from tekudasai.config import ConfigError, Settings
from tekudasai.uploads.storage import LocalStorage, Storage


def storage_for(settings: Settings) -> Storage:
    """The store TK_UPLOADS_URL names (file://… or s3://…); TK_DATA_DIR/uploads by default.

    Raises ConfigError for a URL it cannot use, so a typo stops start-up, not an upload."""
    url = (settings.uploads_url or "").strip()
    if not url:
        return LocalStorage(settings.uploads_dir)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(
                "TK_UPLOADS_URL: a file URL needs an absolute path (file:///srv/uploads),"
                f" not {url!r}"
            )
        return LocalStorage(Path(unquote(parts.path)))
    if scheme == "s3":
        # Imported here: only an S3 store needs boto3 (the optional `s3` extra).
        from tekudasai.uploads.s3 import S3Storage, parse_s3_url

        return S3Storage(parse_s3_url(url), spool_dir=settings.data_dir / "upload-spool")
    raise ConfigError(
        f"TK_UPLOADS_URL must start with file:// or s3://, not {url!r}"
        " (e.g. s3://bucket/prefix?endpoint=https://…&region=…)"
    )


async def get_storage(request: Request) -> Storage:
    # async although it does not await: FastAPI runs a plain def in the thread pool.
    storage = getattr(request.app.state, "upload_storage", None)
    if storage is None:
        storage = request.app.state.upload_storage = storage_for(request.app.state.settings)
    return storage  # type: ignore[no-any-return]


UploadStorage = Annotated[Storage, Depends(get_storage)]
