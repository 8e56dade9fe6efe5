"""Alembic under the hood of `tekudasai db migrate | downgrade | status`."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (with Mako and Pygments) is imported by the functions that migrate, not at start-up:
# a web worker only needs the head revision for its readiness answer, which `head_revision`
# reads from the scripts' own `revision`/`down_revision` lines (tests/db/test_migrations.py
# checks it against Alembic's answer). Saves about 15 MB per worker.

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _script_revisions(path: Path) -> tuple[str, tuple[str, ...]]:
    """A migration script's `revision` and the revisions it follows, from its assignments."""
    values: dict[str, Any] = {}
    target: ast.expr
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            values[target.id] = ast.literal_eval(value)
    down = values.get("down_revision")
    downs = (down,) if isinstance(down, str) else tuple(down or ())
    return str(values["revision"]), downs


@cache
def head_revision() -> str:
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        revision, downs = _script_revisions(path)
        revisions.add(revision)
        followed.update(downs)
    heads = sorted(revisions - followed)
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads; merge them: {heads}")
    return heads[0]


def known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    try:
        return script.get_revision(revision) is not None or revision == "base"
    except Exception:
        return False


async def _run(engine: AsyncEngine, fn: Callable[..., Any], *args: Any) -> None:
    def runner(conn: Connection) -> None:
        fn(alembic_config(conn), *args)

    async with engine.begin() as conn:
        await conn.run_sync(runner)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    from alembic import command

    await _run(engine, command.upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    from alembic import command

    await _run(engine, command.downgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


@dataclass(frozen=True)
class MigrationStatus:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


async def status(engine: AsyncEngine) -> MigrationStatus:
    return MigrationStatus(current=await current_revision(engine), head=head_revision())
