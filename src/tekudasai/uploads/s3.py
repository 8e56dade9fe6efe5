"""Upload bytes in any S3-compatible store: TK_UPLOADS_URL=s3://bucket/prefix?endpoint=…&region=….

Objects are `<prefix>/<2 hex>/<key>`, the layout of the local directory, so existing files move
over with a plain `aws s3 sync`. boto3 is blocking: every call runs in a worker thread. Nothing
is ever whole in memory: an upload is spooled part by part (the first MiB in memory, the rest in
a temporary file on local disk) and sent as one object when small, as a multipart upload when
large; a download is read from the response body chunk by chunk.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar
from urllib.parse import parse_qs, urlsplit

from anyio import CancelScope, to_thread

from tekudasai.config import ConfigError
from tekudasai.uploads.errors import StorageUnavailable
from tekudasai.uploads.storage import KEY_RE, READ_CHUNK, WRITE_BUFFER, StoredObject, new_key

log = logging.getLogger(__name__)

# S3 wants parts of at least 5 MiB (but the last); 8 MiB is boto3's own default part size.
PART_SIZE = 8 * 1024 * 1024
# Spooled parts stay in memory up to this size, then go to a temporary file.
SPOOL_MEMORY = 1024 * 1024
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
_OBJECT_REST = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{32})$")
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})

T = TypeVar("T")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    endpoint: str | None
    region: str
    addressing: str


def parse_s3_url(url: str) -> S3Location:
    """s3://bucket/prefix?endpoint=https://…&region=…&addressing=path|virtual|auto."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    bucket = parts.netloc
    if parts.scheme != "s3" or not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
        raise ConfigError(
            "TK_UPLOADS_URL must look like s3://bucket/prefix?endpoint=https://…&region=…"
            f" (a bucket name of 3-63 lower-case letters, digits, '.' and '-'), not {url!r}"
        )
    unknown = set(query) - {"endpoint", "region", "addressing"}
    if unknown:
        raise ConfigError(f"TK_UPLOADS_URL: unknown parameter(s) {', '.join(sorted(unknown))}")
    endpoint = query.get("endpoint", [None])[0]
    if endpoint is not None and not re.match(r"^https?://[^/]", endpoint):
        raise ConfigError(f"TK_UPLOADS_URL: endpoint must be an http(s) URL, not {endpoint!r}")
    addressing = query.get("addressing", ["auto"])[0]
    if addressing not in {"auto", "path", "virtual"}:
        raise ConfigError("TK_UPLOADS_URL: addressing must be path, virtual or auto")
    return S3Location(
        bucket=bucket,
        prefix=parts.path.strip("/"),
        endpoint=endpoint,
        region=query.get("region", [None])[0] or os.environ.get("AWS_REGION") or "us-east-1",
        addressing=addressing,
    )


def make_client(location: S3Location) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ConfigError(
            "TK_UPLOADS_URL=s3://… needs boto3, which is not installed: pip install 'tekudasai[s3]'"
        ) from None
    options: dict[str, Any] = {
        # Fail over to a 503 within seconds when the store is unreachable.
        "connect_timeout": 5,
        "read_timeout": 60,
        "retries": {"max_attempts": 3, "mode": "standard"},
        # Enough for the thread pool (40 threads) to keep every connection busy.
        "max_pool_connections": 40,
        "s3": {"addressing_style": location.addressing},
    }
    if location.endpoint:
        # Stores other than AWS (MinIO, R2, B2, …) do not all accept the CRC checksums
        # botocore sends by default; uploads carry their own sha256 in the database anyway.
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    return boto3.client(
        "s3",
        endpoint_url=location.endpoint,
        region_name=location.region,
        config=Config(**options),
    )


def _translate(exc: Exception, what: str) -> Exception:
    """botocore's errors as FileNotFoundError (absent object) or StorageUnavailable."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND:
            return FileNotFoundError(what)
    log.warning("upload store error during %s: %s: %s", what, type(exc).__name__, exc)
    return StorageUnavailable()


def _boto_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


class S3Storage:
    """The `Storage` interface on an S3 bucket (see storage.py)."""

    def __init__(
        self,
        location: S3Location,
        *,
        spool_dir: Path | None = None,
        part_size: int = PART_SIZE,
        client: Any = None,
    ) -> None:
        self.location = location
        self.client = client or make_client(location)
        self.errors = _boto_errors()
        self.read_errors: tuple[type[Exception], ...] = (*self.errors, OSError)
        self.spool_dir = spool_dir
        self.part_size = part_size
        self.description = f"s3://{location.bucket}/{location.prefix}".rstrip("/")

    # -- naming ----------------------------------------------------------------------------

    @property
    def _list_prefix(self) -> str:
        return f"{self.location.prefix}/" if self.location.prefix else ""

    def object_key(self, key: str) -> str:
        if not KEY_RE.match(key):
            raise ValueError("not a storage key")
        return f"{self._list_prefix}{key[:2]}/{key}"

    def _key_of(self, object_key: str) -> str | None:
        match = _OBJECT_REST.match(object_key[len(self._list_prefix) :])
        if not object_key.startswith(self._list_prefix) or not match:
            return None
        return match.group(2) if match.group(1) == match.group(2)[:2] else None

    # -- calls -----------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """One blocking boto3 call with its errors translated."""
        try:
            return fn(Bucket=self.location.bucket, **kwargs)
        except self.errors as exc:
            raise _translate(exc, what) from None

    async def acall(self, what: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
        return await to_thread.run_sync(functools.partial(self.call, what, fn, **kwargs))

    # -- requests --------------------------------------------------------------------------

    async def create(self) -> S3Writer:
        return S3Writer(self, new_key())

    async def open(self, key: str) -> AsyncIterator[bytes]:
        response = await self.acall(
            f"reading {key}", self.client.get_object, Key=self.object_key(key)
        )
        body = _Body(response["Body"], self, key)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await to_thread.run_sync(body.read, READ_CHUNK):
                    yield chunk
            finally:
                body.close()

        return chunks()

    async def delete(self, key: str) -> None:
        await self.acall(f"deleting {key}", self.client.delete_object, Key=self.object_key(key))

    async def stray_keys(self, *, older_than: float) -> list[str]:
        def _scan() -> list[str]:
            old = [obj.key for obj in self.list_objects() if obj.modified < older_than]
            # Multipart uploads a crashed or cut-off node never finished or aborted.
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.location.bucket, Prefix=self._list_prefix
            )
            try:
                for page in pages:
                    for upload in page.get("Uploads", []):
                        if upload["Initiated"].timestamp() < older_than:
                            self.call(
                                "aborting an unfinished upload",
                                self.client.abort_multipart_upload,
                                Key=upload["Key"],
                                UploadId=upload["UploadId"],
                            )
            except self.errors as exc:
                raise _translate(exc, "listing unfinished uploads") from None
            return old

        return await to_thread.run_sync(_scan)

    # -- operations (blocking) -------------------------------------------------------------

    def list_objects(self) -> Iterator[StoredObject]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=self._list_prefix
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    key = self._key_of(item["Key"])
                    if key is not None:
                        yield StoredObject(key, int(item["Size"]), item["LastModified"].timestamp())
        except self.errors as exc:
            raise _translate(exc, f"listing {self.description}") from None

    def reader(self, key: str) -> BinaryIO:
        response = self.call(f"reading {key}", self.client.get_object, Key=self.object_key(key))
        return _Body(response["Body"], self, key)  # type: ignore[return-value]

    def put(self, key: str, source: BinaryIO, size: int) -> None:
        self.call(
            f"storing {key}",
            self.client.put_object,
            Key=self.object_key(key),
            Body=source,
            ContentLength=size,
        )

    def delete_many(self, keys: Iterable[str]) -> None:
        batch: list[dict[str, str]] = []
        for key in keys:
            batch.append({"Key": self.object_key(key)})
            if len(batch) == DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, batch: list[dict[str, str]]) -> None:
        answer = self.call(
            "deleting objects",
            self.client.delete_objects,
            Delete={"Objects": batch, "Quiet": True},
        )
        failed = answer.get("Errors", [])
        if failed:
            log.warning("upload store refused to delete %d object(s): %s", len(failed), failed[0])
            raise StorageUnavailable("The file store refused to delete some files.")

    def exists(self, key: str) -> bool:
        try:
            self.call(f"looking up {key}", self.client.head_object, Key=self.object_key(key))
        except FileNotFoundError:
            return False
        return True


class _Body:
    """A response body whose read errors become StorageUnavailable."""

    def __init__(self, raw: Any, storage: S3Storage, key: str) -> None:
        self._raw = raw
        self._storage = storage
        self._key = key

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self._raw.read(size if size >= 0 else None))
        except self._storage.read_errors as exc:
            raise _translate(exc, f"reading {self._key}") from None

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class S3Writer:
    """Spools parts and sends each once it is `part_size` big; commit sends the rest."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self._object_key = storage.object_key(key)
        self._buffer = bytearray()
        self._spool: IO[bytes] | None = None
        self._spooled = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._committed = False
        self._closed = False

    def _new_spool(self) -> IO[bytes]:
        directory = self.storage.spool_dir
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        return tempfile.SpooledTemporaryFile(
            max_size=SPOOL_MEMORY, dir=None if directory is None else str(directory)
        )

    async def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= WRITE_BUFFER:
            await self._flush()
            if self._spooled >= self.storage.part_size:
                await to_thread.run_sync(self._send_part)

    async def _flush(self) -> None:
        if not self._buffer:
            return
        data, self._buffer = bytes(self._buffer), bytearray()

        def _write() -> None:
            if self._spool is None:
                self._spool = self._new_spool()
            self._spool.write(data)

        await to_thread.run_sync(_write)
        self._spooled += len(data)

    def _take_spool(self) -> tuple[IO[bytes], int]:
        spool, size = self._spool, self._spooled
        self._spool, self._spooled = None, 0
        if spool is None:
            spool = self._new_spool()
        spool.seek(0)
        return spool, size

    def _send_part(self) -> None:
        storage, client = self.storage, self.storage.client
        if self._upload_id is None:
            started = storage.call(
                "starting an upload", client.create_multipart_upload, Key=self._object_key
            )
            self._upload_id = str(started["UploadId"])
        spool, size = self._take_spool()
        number = len(self._parts) + 1
        with spool:
            answer = storage.call(
                "sending a part",
                client.upload_part,
                Key=self._object_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=spool,
                ContentLength=size,
            )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def commit(self) -> None:
        await self._flush()

        def _finish() -> None:
            storage, client = self.storage, self.storage.client
            if self._upload_id is None:
                spool, size = self._take_spool()
                with spool:
                    storage.call(
                        "storing a file",
                        client.put_object,
                        Key=self._object_key,
                        Body=spool,
                        ContentLength=size,
                    )
            else:
                if self._spooled or not self._parts:
                    self._send_part()
                storage.call(
                    "finishing an upload",
                    client.complete_multipart_upload,
                    Key=self._object_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
            self._committed = True

        await to_thread.run_sync(_finish)

    async def abort(self) -> None:
        """Forget the parts (or the finished object); a store that cannot be reached now keeps
        them until `uploads clean`, which removes unfinished uploads and objects no row knows."""
        if self._closed:
            return
        self._closed = True
        self._buffer = bytearray()
        spool, self._spool = self._spool, None

        def _remove() -> None:
            if spool is not None:
                spool.close()
            storage, client = self.storage, self.storage.client
            try:
                if self._committed:
                    storage.call("removing a file", client.delete_object, Key=self._object_key)
                elif self._upload_id is not None:
                    storage.call(
                        "abandoning an upload",
                        client.abort_multipart_upload,
                        Key=self._object_key,
                        UploadId=self._upload_id,
                    )
            except (StorageUnavailable, FileNotFoundError):
                log.warning("left %s in the upload store for `uploads clean`", self._object_key)

        with CancelScope(shield=True):
            await to_thread.run_sync(_remove)
