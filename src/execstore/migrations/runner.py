"""Run the shipped Alembic revisions from Python: upgrade, downgrade, current, diff.

The revisions live inside the package (``execstore/migrations/versions``), so no
``alembic.ini`` is needed: :func:`alembic_config` builds one in memory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from execstore.config import Settings, load_settings
from execstore.db import create_engine
from execstore.errors import MigrationRequired

__all__ = [
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "include_name",
    "migrate",
    "require_head",
    "schema_diff",
    "stamp",
]

_PARTITION = re.compile(r"^execution_log_partitioned_p\d{6}$")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Hide monthly log partitions from autogenerate: they are data, not schema."""
    return not (type_ == "table" and name is not None and _PARTITION.match(name))


def alembic_config() -> Config:
    """An in-memory Alembic config pointing at the package's revisions."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    return cfg


def head_revision() -> str:
    """The newest revision this package ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _settings(url: str, settings: Settings | None) -> Settings:
    return settings or load_settings(database_url=url)


async def _run(url: str, settings: Settings | None, fn: Any, *args: Any) -> Any:
    cfg_settings = _settings(url, settings)
    # SQLite rebuilds tables in batch mode; foreign keys are checked after, not during.
    engine = create_engine(cfg_settings, url=url, foreign_keys=False)
    try:
        async with engine.connect() as conn:
            result = await conn.run_sync(fn, *args)
            await conn.commit()
            if conn.dialect.name == "sqlite":
                problems = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if problems:
                    raise MigrationRequired(f"foreign key check failed after migration: {problems}")
            return result
    finally:
        await engine.dispose()


def _with_config(conn: sa.Connection, action: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    getattr(command, action)(cfg, revision)


async def migrate(url: str, revision: str = "head", *, settings: Settings | None = None) -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the package's head)."""
    await _run(url, settings, _with_config, "upgrade", revision)


async def downgrade(url: str, revision: str, *, settings: Settings | None = None) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``base`` empties it)."""
    await _run(url, settings, _with_config, "downgrade", revision)


async def stamp(url: str, revision: str, *, settings: Settings | None = None) -> None:
    """Record ``revision`` as the database's without running it (adopting a database)."""
    await _run(url, settings, _with_config, "stamp", revision)


def _current(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def current_revision(url: str, *, settings: Settings | None = None) -> str | None:
    """The revision the database at ``url`` is at (None for an empty database)."""
    result: str | None = await _run(url, settings, _current)
    return result


async def require_head(conn: Any) -> None:
    """Raise MigrationRequired unless the connected database is at the package's head."""
    current = await conn.run_sync(_current)
    head = head_revision()
    if current != head:
        raise MigrationRequired(
            f"database is at revision {current or 'none'}, execstore needs {head}: "
            "run `execstore db upgrade`"
        )


def _diff(conn: sa.Connection) -> list[Any]:
    from execstore.schema.models import Base

    ctx = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_name": include_name}
    )
    return list(compare_metadata(ctx, Base.metadata))


async def schema_diff(url: str, *, settings: Settings | None = None) -> list[Any]:
    """What autogenerate finds between the models and the database (empty when in sync)."""
    result: list[Any] = await _run(url, settings, _diff)
    return result
