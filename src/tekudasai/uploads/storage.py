"""Where upload bytes live. Keys are random and opaque: no user input ever becomes a path."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from anyio import to_thread

KEY_RE = re.compile(r"^[0-9a-f]{32}$")
READ_CHUNK = 256 * 1024
WRITE_BUFFER = 256 * 1024


class StorageWriter(Protocol):
    key: str

    async def write(self, data: bytes) -> None: ...

    async def commit(self) -> None:
        """Make the bytes readable under `key`."""

    async def abort(self) -> None:
        """Forget everything written; safe to call more than once."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: float  # epoch seconds


class Storage(Protocol):
    """Upload bytes by opaque key: LocalStorage (a directory) or S3Storage (uploads/s3.py).

    The async methods serve requests; the blocking ones serve backups, restores and checks,
    which run them in a worker thread."""

    description: str  # for messages: a path or s3://bucket/prefix

    async def create(self) -> StorageWriter: ...

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """The bytes under `key`, in chunks; FileNotFoundError (before any chunk) when absent."""
        ...

    async def delete(self, key: str) -> None: ...

    async def stray_keys(self, *, older_than: float) -> list[str]:
        """Keys (and unfinished writes) last touched before the epoch time `older_than`."""
        ...

    def list_objects(self) -> Iterator[StoredObject]:
        """Every stored upload (never unfinished writes); blocking."""
        ...

    def reader(self, key: str) -> BinaryIO:
        """A blocking file object over the bytes of `key`; FileNotFoundError when absent."""
        ...

    def put(self, key: str, source: BinaryIO, size: int) -> None:
        """Store `size` bytes read from `source` under `key` (restores); blocking."""

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove these keys (absent ones are fine); blocking."""


def new_key() -> str:
    return secrets.token_hex(16)


class LocalStorage:
    """Files under a directory: `<root>/<2 hex>/<key>`, unfinished writes in `<root>/.partial`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.partial = root / ".partial"
        self.description = str(root)

    def path_of(self, key: str) -> Path:
        if not KEY_RE.match(key):
            raise ValueError("not a storage key")
        return self.root / key[:2] / key

    async def create(self) -> LocalWriter:
        key = new_key()
        final = self.path_of(key)
        temp = self.partial / f"{key}.part"

        def _open() -> int:
            self.partial.mkdir(parents=True, exist_ok=True)
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

        return LocalWriter(key, await to_thread.run_sync(_open), temp, final)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        handle = await to_thread.run_sync(self.path_of(key).open, "rb")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await to_thread.run_sync(handle.read, READ_CHUNK):
                    yield chunk
            finally:
                handle.close()

        return chunks()

    async def delete(self, key: str) -> None:
        await to_thread.run_sync(lambda: self.path_of(key).unlink(missing_ok=True))

    async def stray_keys(self, *, older_than: float) -> list[str]:
        def _scan() -> list[str]:
            found: list[str] = []
            if not self.root.is_dir():
                return found
            for path in self.root.glob("[0-9a-f][0-9a-f]/*"):
                if KEY_RE.match(path.name) and path.stat().st_mtime < older_than:
                    found.append(path.name)
            if self.partial.is_dir():
                for path in self.partial.glob("*.part"):
                    if path.stat().st_mtime < older_than:
                        path.unlink(missing_ok=True)
            return found

        return await to_thread.run_sync(_scan)

    def list_objects(self) -> Iterator[StoredObject]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("[0-9a-f][0-9a-f]/*")):
            if KEY_RE.match(path.name) and path.parent.name == path.name[:2]:
                stat = path.stat()
                yield StoredObject(path.name, stat.st_size, stat.st_mtime)

    def reader(self, key: str) -> BinaryIO:
        return self.path_of(key).open("rb")

    def put(self, key: str, source: BinaryIO, size: int) -> None:
        final = self.path_of(key)
        self.partial.mkdir(parents=True, exist_ok=True)
        temp = self.partial / f"{key}.part"
        with temp.open("wb") as handle:
            shutil.copyfileobj(source, handle, READ_CHUNK)
            handle.flush()
            os.fsync(handle.fileno())
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.path_of(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def all_files(self) -> list[Path]:
        """Every file below the root (tests use it to prove nothing was left behind)."""
        return [p for p in self.root.rglob("*") if p.is_file()] if self.root.is_dir() else []


class LocalWriter:
    def __init__(self, key: str, fd: int, temp: Path, final: Path) -> None:
        self.key = key
        self._fd: int | None = fd
        self._temp = temp
        self._final = final
        self._buffer = bytearray()
        self.started = time.monotonic()

    async def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= WRITE_BUFFER:
            await self._flush()

    async def _flush(self) -> None:
        if self._buffer and self._fd is not None:
            data, self._buffer = bytes(self._buffer), bytearray()
            fd = self._fd

            def _write_all() -> None:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]

            await to_thread.run_sync(_write_all)

    async def commit(self) -> None:
        await self._flush()
        fd, self._fd = self._fd, None

        def _finish() -> None:
            if fd is not None:
                os.fsync(fd)
                os.close(fd)
            self._final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._temp, self._final)

        await to_thread.run_sync(_finish)

    async def abort(self) -> None:
        fd, self._fd = self._fd, None
        self._buffer = bytearray()

        def _remove() -> None:
            if fd is not None:
                os.close(fd)
            self._temp.unlink(missing_ok=True)
            self._final.unlink(missing_ok=True)

        await to_thread.run_sync(_remove)
