"""Run the shipped Alembic revisions from Python: upgrade, downgrade, current, diff.

The revisions live inside the package (``execstore/migrations/versions``), so no
``alembic.ini`` is needed: :func:`alembic_config` builds one in memory.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.config import Settings, load_settings
from execstore.db import create_engine, sqlite_path
from execstore.errors import InvalidArgument, MigrationRequired
from execstore.migrations.helpers import downgrade_refused, rows_refused

__all__ = [
    "Revision",
    "Step",
    "alembic_config",
    "compatible_revisions",
    "current_revision",
    "downgrade",
    "downgrade_plan",
    "head_revision",
    "include_name",
    "migrate",
    "rag_contracted_revisions",
    "require_compatible",
    "resolve_target",
    "revisions",
    "schema_diff",
    "stamp",
    "upgrade_sql",
]

Step = Callable[[str | None, str | None], None]
"""Told of each revision step as it is applied: ``(from, to)``; None is base (empty)."""


@dataclass(frozen=True)
class Revision:
    """One shipped revision: its id, the one below it and the first line of its doc."""

    revision: str
    down_revision: str | None
    title: str


# execstore names partitions like pg_partman 4.x (``_pYYYY_MM``, ``_N`` when taken) and
# pg_partman adds ``_default``.
_PARTITION = re.compile(r"^execution_log_partitioned_(p\d{4}_\d{2}(_\d+)?|default)$")
# Expression indexes PostgreSQL prints back in another form than SQLAlchemy writes them,
# so autogenerate cannot compare them: created by their revision (or by the model's
# table, for the metadata listing index), checked by their tests.
_MIGRATION_ONLY_INDEXES = frozenset(
    {
        "ix_execution_screenshots_legacy_job_uuid",
        "ix_execution_rag_rules_legacy_job_uuid",
        "ix_execution_metadata_organization_hash_created_at",
    }
)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Hide monthly log partitions (data, not schema) and migration-only expression indexes."""
    if type_ == "index" and name in _MIGRATION_ONLY_INDEXES:
        return False
    return not (type_ == "table" and name is not None and _PARTITION.match(name))


def alembic_config() -> Config:
    """An in-memory Alembic config pointing at the package's revisions."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    # The revisions ship with the package and never change while it runs; reading them
    # costs tens of milliseconds, which every ExecStore.open would pay.
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this package ships."""
    head = _script().get_current_head()
    assert head is not None
    return head


def revisions() -> list[Revision]:
    """Every shipped revision, oldest first."""
    found = []
    for rev in _script().walk_revisions():
        doc = (rev.doc or "").strip().removeprefix(f"{rev.revision}:").strip().splitlines()
        down = rev.down_revision
        found.append(
            Revision(
                rev.revision,
                down if isinstance(down, str) or down is None else str(down[0]),
                doc[0] if doc else "",
            )
        )
    return list(reversed(found))


def resolve_target(revision: str) -> str:
    """``revision`` if the package ships it (or it is ``head``/``base``/relative, ``-1``),
    else InvalidArgument naming the revisions it ships."""
    known = [r.revision for r in revisions()]
    if revision in ("head", "heads", "base") or revision in known:
        return revision
    if re.fullmatch(r"[+-]\d+", revision):
        return revision
    raise InvalidArgument(
        f"no revision {revision!r}; the package ships (oldest first): {', '.join(known)}"
    )


def _settings(url: str, settings: Settings | None) -> Settings:
    return settings or load_settings(database_url=url)


async def _run(
    url: str, settings: Settings | None, fn: Any, *args: Any, changes: bool = True
) -> Any:
    cfg_settings = _settings(url, settings)
    # SQLite rebuilds tables in batch mode; foreign keys are checked after, not during
    # (after a call that changes something: a look changes nothing to check).
    engine = create_engine(cfg_settings, url=url, foreign_keys=False)
    try:
        async with engine.connect() as conn:
            result = await conn.run_sync(fn, *args)
            await conn.commit()
            if changes and conn.dialect.name == "sqlite":
                problems = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if problems:
                    raise MigrationRequired(f"foreign key check failed after migration: {problems}")
            return result
    finally:
        await engine.dispose()


def _with_config(
    conn: sa.Connection,
    action: str,
    revision: str,
    clock: Clock = SYSTEM_CLOCK,
    on_step: Step | None = None,
) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    # The one date a revision decides by (which month's partitions to create ahead).
    cfg.attributes["now"] = clock.now()
    if on_step is not None:
        cfg.attributes["on_version_apply"] = _step_reporter(on_step)
    getattr(command, action)(cfg, revision)


def _step_reporter(on_step: Step) -> Callable[..., None]:
    def applied(*, step: Any, **_: Any) -> None:
        ups, downs = step.up_revision_ids, step.down_revision_ids
        up = ups[0] if ups else None
        down = downs[0] if downs else None
        if step.is_upgrade:
            on_step(down, up)
        else:
            on_step(up, down)

    return applied


def _downgrade(conn: sa.Connection, revision: str, on_step: Step | None = None) -> None:
    # A refused downgrade must leave the database where it was: every guard on the way
    # down is checked against the tables as they are before the first step runs. Rows a
    # lower step would meet only after a higher one moved them (a renamed legacy table,
    # log lines moved back) are refused by that step itself, and the whole downgrade is
    # one transaction (DDL is transactional on both backends), so that refusal, or any
    # step failing half-way, rolls every step back.
    _check_downgrade_guards(conn, revision)
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    cfg.attributes["transaction_per_migration"] = False
    if on_step is not None:
        cfg.attributes["on_version_apply"] = _step_reporter(on_step)
    command.downgrade(cfg, revision)


def _path_down(conn: sa.Connection, target: str) -> list[Any]:
    """The revision scripts a downgrade from the current revision to ``target`` would undo."""
    current = _current(conn)
    if current is None:
        return []
    script = _script()
    lower = None if target == "base" else target
    if lower is not None and "-" in lower:  # relative targets ("-1") are resolved by Alembic
        return []
    return [rev for rev in script.iterate_revisions(current, lower) if rev.revision != lower]


def _check_downgrade_guards(conn: sa.Connection, target: str) -> None:
    # Each revision names the tables whose rows its downgrade would drop
    # (DOWNGRADE_REFUSED_WITH_ROWS), and for some of them which rows
    # (DOWNGRADE_REFUSED_WHERE). A table a lower revision guards may be somewhere else
    # now: renamed by a revision above it (RENAMED), or about to receive the rows a
    # higher downgrade moves into it (DOWNGRADE_MOVES_ROWS); one a contract revision
    # dropped (DROPPED) comes back empty. The newest revision on the way down speaks first.
    path = _path_down(conn, target)
    for k, rev in enumerate(path):
        above = list(reversed(path[:k]))  # oldest first
        where = getattr(rev.module, "DOWNGRADE_REFUSED_WHERE", {})
        found = []
        for table in getattr(rev.module, "DOWNGRADE_REFUSED_WITH_ROWS", ()):
            for now in sorted(_where_now(table, above)):
                if rows_refused(conn, [now], where if now == table else None):
                    found.append(now if now == table else f"{now} (as {table})")
        if found:
            raise downgrade_refused(rev.revision, found)


def _where_now(table: str, above: list[Any]) -> set[str]:
    """The tables at the current revision whose rows ``table`` would hold once the
    revisions ``above`` it (oldest first) are undone."""
    names = {table}
    for rev in above:
        for old, new in getattr(rev.module, "RENAMED", {}).items():
            if old in names:
                names = (names - {old}) | {new}
        for source, destination in getattr(rev.module, "DOWNGRADE_MOVES_ROWS", {}).items():
            if destination in names:
                names = names | {source}
        names = names - set(getattr(rev.module, "DROPPED", ()))
    return names


async def migrate(
    url: str,
    revision: str = "head",
    *,
    settings: Settings | None = None,
    clock: Clock = SYSTEM_CLOCK,
    on_step: Step | None = None,
) -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the package's head).

    ``clock`` dates what a revision creates ahead of time (log partitions). Each revision
    commits on its own: ``on_step(from, to)`` is told of each as it is applied, so a caller
    knows where the database stands when a later step fails (that step changes nothing).
    """
    await _run(url, settings, _with_config, "upgrade", revision, clock, on_step)


def _capture_upgrade(conn: sa.Connection, revision: str, clock: Clock) -> list[str]:
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if parameters:
            statement = f"{statement}  -- with {parameters!r}"
        statements.append(statement.strip())

    sa.event.listen(conn, "before_cursor_execute", seen)
    try:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        cfg.attributes["now"] = clock.now()
        cfg.attributes["transaction_per_migration"] = False
        with conn.begin() as transaction:
            command.upgrade(cfg, revision)
            transaction.rollback()
    finally:
        sa.event.remove(conn, "before_cursor_execute", seen)
    return statements


async def upgrade_sql(
    url: str,
    revision: str = "head",
    *,
    settings: Settings | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> list[str]:
    """The statements an upgrade to ``revision`` sends, with nothing changed.

    The upgrade runs for real, in one transaction that is rolled back (DDL is
    transactional on both backends), so what it prints is what this database would get,
    checks and data steps included. A SQLite file that does not exist yet is not created:
    an in-memory database stands in for it.
    """
    path = sqlite_path(url)
    if path is not None and not path.exists():
        url = "sqlite+aiosqlite://"
    result: list[str] = await _run(url, settings, _capture_upgrade, revision, clock, changes=False)
    return result


async def downgrade(
    url: str, revision: str, *, settings: Settings | None = None, on_step: Step | None = None
) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``base`` empties it).

    Raises DowngradeRefused, with the database unchanged, when a revision on the way
    down would drop rows (the message names the tables holding them).
    """
    await _run(url, settings, _downgrade, revision, on_step)


def _downgrade_plan(conn: sa.Connection, revision: str) -> list[str]:
    _check_downgrade_guards(conn, revision)
    return [rev.revision for rev in _path_down(conn, revision)]


async def downgrade_plan(url: str, revision: str, *, settings: Settings | None = None) -> list[str]:
    """The revisions a downgrade to ``revision`` would undo, newest first (nothing changes).

    Raises DowngradeRefused when the downgrade itself would be refused.
    """
    result: list[str] = await _run(url, settings, _downgrade_plan, revision, changes=False)
    return result


async def stamp(url: str, revision: str, *, settings: Settings | None = None) -> None:
    """Record ``revision`` as the database's without running it (adopting a database)."""
    await _run(url, settings, _with_config, "stamp", revision)


def _current(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def current_revision(url: str, *, settings: Settings | None = None) -> str | None:
    """The revision the database at ``url`` is at (None for an empty database)."""
    result: str | None = await _run(url, settings, _current, changes=False)
    return result


def compatible_revisions() -> list[str]:
    """The revisions this package can run against, newest first.

    Head, and below it every contract revision (a module with ``contract = True``: it
    only drops what a finished backfill emptied) down to the first expand revision. A
    database may stop before the contract steps while its backfills run.
    """
    found = []
    for rev in _script().walk_revisions():
        found.append(rev.revision)
        if not getattr(rev.module, "contract", False):
            break
    return found


@functools.cache
def rag_contracted_revisions() -> frozenset[str]:
    """The revisions at which ``contract_rag_rules`` has dropped the legacy RAG table."""
    found = set()
    for rev in _script().walk_revisions():
        found.add(rev.revision)
        if rev.revision == "contract_rag_rules":
            break
    return frozenset(found)


async def require_compatible(conn: Any) -> str:
    """The connected database's revision; MigrationRequired unless this package can use it."""
    current = await conn.run_sync(_current)
    allowed = compatible_revisions()
    if current not in allowed:
        raise MigrationRequired(
            f"database is at revision {current or 'base (empty)'}, execstore needs {allowed[-1]} "
            f"or later: run `execstore db upgrade {allowed[-1]}` (or `execstore db upgrade`)"
        )
    return str(current)


def _diff(conn: sa.Connection) -> list[Any]:
    from execstore.schema.models import Base

    ctx = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_name": include_name}
    )
    with warnings.catch_warnings():
        # SQLite cannot reflect expression indexes at all; Alembic says so for each one.
        for name in _MIGRATION_ONLY_INDEXES:
            warnings.filterwarnings("ignore", f".*expression-based index '{name}'")
        found = compare_metadata(ctx, Base.metadata)
    return [d for d in found if not _other_dialect(d, Base, conn) and not _uncomparable(d)]


def _uncomparable(diff: Any) -> bool:
    """A model's expression index (include_name hides only the reflected side)."""
    return (
        isinstance(diff, tuple)
        and diff[0] == "add_index"
        and diff[1].name in _MIGRATION_ONLY_INDEXES
    )


def _other_dialect(diff: Any, base: Any, conn: sa.Connection) -> bool:
    """A model index declared with ``ddl_if(dialect=...)`` for another backend (e.g. GIN)."""
    if not (isinstance(diff, tuple) and diff[0] == "add_index"):
        return False
    table = base.metadata.tables.get(diff[1].table.name)
    declared = {i.name: i for i in table.indexes} if table is not None else {}
    only = getattr(declared.get(diff[1].name), "_ddl_if", None)
    return only is not None and only.dialect not in (None, conn.dialect.name)


async def schema_diff(url: str, *, settings: Settings | None = None) -> list[Any]:
    """What autogenerate finds between the models and the database (empty when in sync)."""
    result: list[Any] = await _run(url, settings, _diff, changes=False)
    return result
