"""Point-in-time recovery for the embedded PostgreSQL: base backups (pg_basebackup) beside the
WAL archive the server fills, and a rebuild of pgdata from the last base backup before a moment
plus WAL replay up to it. The previous pgdata stays aside until the rebuilt one is up."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tekudasai.backup.archive import Progress, Retention, no_progress, parse_time, remove_unkept
from tekudasai.backup.restore import Confirm, RestoreRefused
from tekudasai.backup.tools import BackupError
from tekudasai.config import Settings
from tekudasai.core.schemas import iso
from tekudasai.db.embedded import (
    SYSTEM_USER,
    WAL_ARCHIVE_MARKER,
    EmbeddedPostgres,
    EmbeddedPostgresError,
    bin_path,
    run_as_owner_kwargs,
    wal_archive_dir,
)

BASE_DIR = "base_backups"
INFO_FILE = "tekudasai-base.json"
RECOVERY_CONF = "99-point-in-time-recovery.conf"
PROMOTE_TIMEOUT_S = 600.0
_START_WAL = re.compile(r"START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)")
_SEGMENT = re.compile(r"^[0-9A-F]{24}$|^[0-9A-F]{8}\.history$")


@dataclass(frozen=True)
class BaseBackup:
    path: Path
    finished_at: datetime
    start_wal: str

    @property
    def data(self) -> Path:
        return self.path / "data"


def embedded_pgdata(settings: Settings) -> Path | None:
    """The embedded server's data directory, or None when DATABASE_URL names an external one."""
    if settings.embedded_pgdata is not None:
        return settings.embedded_pgdata
    return settings.pgdata_dir if settings.embedded else None


def base_dir(pgdata: Path) -> Path:
    return pgdata.parent / BASE_DIR


def parse_target_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BackupError(
            f"--to-time: {value!r} is not an ISO 8601 time (e.g. 2026-01-02T03:04:05Z)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _chown_tree(root: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(SYSTEM_USER)
    shutil.chown(root, entry.pw_uid, entry.pw_gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _run_owner(args: list[str], *, timeout: float) -> str:
    try:
        done = subprocess.run(
            args,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            stdin=subprocess.DEVNULL,
            **run_as_owner_kwargs(),  # type: ignore[call-overload]
        )
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or "").strip().splitlines()
        raise BackupError(f"{Path(args[0]).name} failed: {' '.join(detail[-3:])}") from exc
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{Path(args[0]).name} timed out after {timeout:.0f}s") from exc
    return done.stdout


def _psql(server: EmbeddedPostgres, sql: str) -> str:
    info_dir = server.socket_dir
    return _run_owner(
        [
            str(bin_path("psql")),
            "-X",
            "-q",
            "-At",
            "-h",
            str(info_dir),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ],
        timeout=60,
    ).strip()


# -- base backups --------------------------------------------------------------------------


def take_base_backup(pgdata: Path, progress: Progress | None = None) -> BaseBackup:
    """pg_basebackup of the running embedded server into TK_DATA_DIR/base_backups/<time>/."""
    report = progress or no_progress
    server = EmbeddedPostgres(pgdata)
    if not server.is_running():
        raise BackupError("the embedded PostgreSQL is not running: cannot take a base backup")
    if _psql(server, "SHOW archive_mode") != "on":
        raise BackupError(
            "WAL archiving is off on the embedded PostgreSQL: restart Te Kudasai once so it is"
            " switched on, then take the backup again"
        )
    root = base_dir(server.pgdata)
    root.mkdir(mode=0o700, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    final = root / stamp
    work = root / f".tmp-{stamp}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    _chown_tree(root)
    report("base", 0, 1)
    # From now on the server keeps its WAL (see EmbeddedPostgres._archive_settings).
    (wal_archive_dir(server.pgdata) / WAL_ARCHIVE_MARKER).touch()
    try:
        _run_owner(
            [
                str(bin_path("pg_basebackup")),
                "-D",
                str(work / "data"),
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-password",
                "-h",
                str(server.socket_dir),
                "-U",
                "postgres",
            ],
            timeout=6 * 3600,
        )
        label = (work / "data" / "backup_label").read_text()
        match = _START_WAL.search(label)
        if not match:
            raise BackupError("pg_basebackup wrote no usable backup_label")
        finished = datetime.now(UTC)
        (work / INFO_FILE).write_text(
            json.dumps({"finishedAt": iso(finished), "startWal": match.group(1)}, indent=2)
        )
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    report("base", 1, 1)
    return BaseBackup(final, parse_time(iso(finished)), match.group(1))


def list_base_backups(pgdata: Path) -> list[BaseBackup]:
    root = base_dir(pgdata)
    found = []
    if root.is_dir():
        for child in root.iterdir():
            info = child / INFO_FILE
            if child.name.startswith(".") or not info.is_file():
                continue
            try:
                data = json.loads(info.read_text())
                found.append(BaseBackup(child, parse_time(data["finishedAt"]), data["startWal"]))
            except (ValueError, KeyError):
                continue
    return sorted(found, key=lambda b: b.finished_at)


def prune_base_backups(pgdata: Path, policy: Retention) -> list[Path]:
    """Apply the retention policy to base backups, then drop WAL older than the oldest kept."""
    backups = list_base_backups(pgdata)
    removed = remove_unkept([(b.finished_at, b.path) for b in backups], policy)
    remaining = [b for b in backups if b.path not in removed]
    archive = wal_archive_dir(pgdata.expanduser().resolve())
    if remaining and archive.is_dir():
        _run_owner(
            [str(bin_path("pg_archivecleanup")), str(archive), remaining[0].start_wal], timeout=600
        )
    return removed


# -- recovery ------------------------------------------------------------------------------


def choose_base_backup(pgdata: Path, target: datetime, now: datetime | None = None) -> BaseBackup:
    """The newest base backup finished at or before `target`; clear errors otherwise."""
    now = now or datetime.now(UTC)
    if target > now:
        raise BackupError(
            f"--to-time {iso(target)} is in the future (now is {iso(now)}): nothing to recover to"
        )
    backups = list_base_backups(pgdata)
    if not backups:
        raise BackupError(
            "there is no base backup yet, so no point in time to recover to:"
            " `tekudasai db backup` takes one"
        )
    eligible = [b for b in backups if b.finished_at <= target]
    if not eligible:
        raise BackupError(
            f"--to-time {iso(target)} is before the oldest base backup"
            f" ({iso(backups[0].finished_at)}): the earliest moment you can recover to is"
            f" {iso(backups[0].finished_at)}"
        )
    return eligible[-1]


def restore_to_time(
    settings: Settings, target: datetime, *, confirm: Confirm, progress: Progress | None = None
) -> str:
    """Rebuild the embedded pgdata as it was at `target`; returns a summary line."""
    report = progress or no_progress
    pgdata = embedded_pgdata(settings)
    if pgdata is None:
        raise BackupError(
            "point-in-time recovery is built in for the embedded database only; DATABASE_URL names"
            " an external server: use that server's own PITR tooling (see the operations docs)"
        )
    server = EmbeddedPostgres(pgdata)
    pgdata = server.pgdata
    base = choose_base_backup(pgdata, target)
    if not confirm(
        f"This rebuilds the embedded database as of {iso(target)} (from the base backup of"
        f" {iso(base.finished_at)}); every change after that moment is discarded."
    ):
        raise RestoreRefused(
            "point-in-time recovery replaces live data: confirm it (run it in a terminal or pass"
            " --yes)"
        )
    was_running = server.is_running()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = pgdata.parent / f"{pgdata.name}.pre-pitr-{stamp}"
    report("prepare", 0, 1)
    if was_running:
        # A commit stamped after the target lets recovery stop exactly at the target.
        _psql(server, "SELECT pg_current_xact_id()")
        _psql(server, "SELECT pg_switch_wal()")
        server.stop()
    pgdata.rename(aside)
    report("prepare", 1, 1)
    try:
        report("copy", 0, 1)
        _rebuild_pgdata(base, aside, pgdata, target)
        report("copy", 1, 1)
        report("replay", 0, 1)
        server.ensure_running()
        _wait_for_promotion(server)
        (pgdata / "tekudasai.conf.d" / RECOVERY_CONF).unlink(missing_ok=True)
        report("replay", 1, 1)
    except BaseException as exc:
        log_tail = _log_tail(pgdata)
        _roll_back(server, aside, stamp)
        if was_running:
            server.ensure_running()
        if isinstance(exc, EmbeddedPostgresError | BackupError):
            raise BackupError(
                f"point-in-time recovery failed, the previous database is back in place: {exc}"
                + (f"\n{log_tail}" if log_tail else "")
            ) from exc
        raise
    if not was_running:
        server.stop()
    shutil.rmtree(aside, ignore_errors=True)
    return (
        f"database recovered to {iso(target)} (base backup {base.path.name} + WAL replay);"
        " take a fresh backup now: `tekudasai db backup`"
    )


def _rebuild_pgdata(base: BaseBackup, old: Path, pgdata: Path, target: datetime) -> None:
    shutil.copytree(base.data, pgdata, symlinks=True)
    for stale in ("postmaster.pid", "postmaster.opts", "log"):
        (pgdata / stale).unlink(missing_ok=True)
    for lock in pgdata.glob(".s.PGSQL.*"):
        lock.unlink(missing_ok=True)
    # WAL the archive may not have yet (the current segment) is still in the old pg_wal.
    wal = pgdata / "pg_wal"
    for segment in (old / "pg_wal").iterdir():
        if segment.is_file() and _SEGMENT.match(segment.name):
            shutil.copy2(segment, wal / segment.name)
    archive = shlex.quote(str(wal_archive_dir(pgdata))) + "/%f"
    conf_dir = pgdata / "tekudasai.conf.d"
    conf_dir.mkdir(exist_ok=True)
    stamp = target.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    (conf_dir / RECOVERY_CONF).write_text(
        "# written by `tekudasai db restore --to-time`; removed after recovery\n"
        f"restore_command = 'test -f {archive} && cp {archive} %p'\n"
        f"recovery_target_time = '{stamp}'\n"
        "recovery_target_action = 'promote'\n"
        "recovery_target_timeline = 'latest'\n"
    )
    (pgdata / "recovery.signal").touch()
    pgdata.chmod(0o700)
    _chown_tree(pgdata)


def _wait_for_promotion(server: EmbeddedPostgres) -> None:
    deadline = time.monotonic() + PROMOTE_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.is_running():
            raise BackupError("PostgreSQL stopped during WAL replay")
        try:
            if _psql(server, "SELECT pg_is_in_recovery()") == "f":
                return
        except (BackupError, EmbeddedPostgresError):
            pass
        time.sleep(0.3)
    raise BackupError(f"WAL replay did not finish within {PROMOTE_TIMEOUT_S:.0f}s")


def _log_tail(pgdata: Path) -> str:
    log = pgdata / "log"
    if not log.is_file():
        return ""
    lines = [line for line in log.read_text(errors="replace").splitlines() if "FATAL" in line]
    return "\n".join(lines[-3:])


def _roll_back(server: EmbeddedPostgres, aside: Path, stamp: str) -> None:
    with contextlib.suppress(EmbeddedPostgresError):
        server.stop(mode="immediate")
    pgdata = server.pgdata
    if pgdata.exists():
        pgdata.rename(pgdata.parent / f"{pgdata.name}.failed-pitr-{stamp}")
    aside.rename(pgdata)
