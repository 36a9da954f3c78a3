"""One backfill protocol: count what is left, move it, verify, record the completion.

Every one-time backfill (``results``, ``metadata``, ``rag``, ``logs``, ``audit``: see
:data:`BACKFILLS`) works the same way:

- its module's ``count_remaining(sessions, organization_id=None)`` says how many legacy
  rows are still to move (0 once the legacy table is gone);
- its job moves them in batches, sets aside what it cannot move, keeps whatever per-row
  state it needs to resume, and returns a :class:`~execstore.operations.BatchReport`
  whose ``counts["remaining"]`` is what is left and ``details["complete"]`` whether the
  backfill is done;
- once a run (not a dry run) leaves nothing remaining, sets nothing aside and its own
  verification agrees, it records its completion in ``backfill_completions``
  (:func:`finish_backfill`), with the rows its legacy table held then;
- the contract revision that drops the legacy table checks that record through one
  helper, :func:`execstore.migrations.helpers.require_backfill_complete`, and refuses
  with BackfillIncomplete without it (or when the legacy table changed since).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from execstore.clock import Clock
from execstore.errors import translate_database_errors
from execstore.operations.batch import BatchReport
from execstore.schema.operations import BackfillCompletion

__all__ = [
    "BACKFILLS",
    "Completion",
    "finish_backfill",
    "forget_completion",
    "read_completion",
    "record_completion",
    "table_exists",
]

BACKFILLS: Final = ("results", "metadata", "rag", "logs", "audit")
"""Every one-time backfill, by the name its completion record has."""
_table: sa.Table = BackfillCompletion.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Completion:
    """A backfill's completion record."""

    name: str
    completed_at: dt.datetime
    verified_at: dt.datetime
    details: dict[str, Any]


async def table_exists(db: AsyncSession | AsyncConnection, name: str) -> bool:
    """Whether the database has table ``name`` (a legacy table is gone after its contract)."""
    connection = await db.connection() if isinstance(db, AsyncSession) else db
    return bool(await connection.run_sync(lambda c: sa.inspect(c).has_table(name)))


async def record_completion(
    session: AsyncSession,
    name: str,
    *,
    completed_at: dt.datetime,
    verified_at: dt.datetime,
    details: dict[str, Any],
) -> None:
    """Record (or replace) backfill ``name``'s completion."""
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_table)
    values = {"completed_at": completed_at, "verified_at": verified_at, "details": details}
    await session.execute(
        insert.values(name=name, **values).on_conflict_do_update(
            index_elements=["name"], set_=values
        )
    )


async def forget_completion(session: AsyncSession, name: str) -> None:
    """Remove backfill ``name``'s completion record: what it verified has changed."""
    await session.execute(sa.delete(_table).where(_table.c.name == name))


async def read_completion(
    sessions: async_sessionmaker[AsyncSession], name: str
) -> Completion | None:
    """Backfill ``name``'s completion record, or None."""
    async with sessions() as session:
        with translate_database_errors():
            row = (await session.execute(sa.select(_table).where(_table.c.name == name))).first()
    if row is None:
        return None
    return Completion(row.name, row.completed_at, row.verified_at, dict(row.details))


async def finish_backfill(
    sessions: async_sessionmaker[AsyncSession],
    report: BatchReport,
    name: str,
    *,
    remaining: int,
    legacy_table: str | None,
    clock: Clock,
    everywhere: int | None = None,
    verified: bool | None = True,
    completed_at: dt.datetime | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """End a backfill run: ``counts["remaining"]``, ``details["complete"]`` (recorded, or
    the legacy table is gone), ``details["legacy_table"]`` (it exists), the record.

    ``remaining`` is what is left in the run's scope (one organization, or all), and
    ``everywhere`` what is left in every organization (default: ``remaining``). A real
    run that leaves nothing anywhere, set nothing aside and ``verified`` its result
    records the completion, with the rows ``legacy_table`` holds now; one that leaves
    work behind removes an earlier record (it no longer holds). A dry run changes
    nothing, nor does a job that leaves the verification to another (``verified`` None:
    it only reports the record).
    """
    report.counts["remaining"] = remaining
    left = remaining if everywhere is None else everywhere
    done = left == 0 and bool(verified) and not report.set_aside
    async with sessions() as session:
        with translate_database_errors():
            async with session.begin():
                writes = not report.dry_run and verified is not None
                if writes and session.get_bind().dialect.name == "sqlite":
                    # Write lock first: a deferred transaction that reads and then writes
                    # fails at once when another connection wrote in between.
                    await session.execute(sa.delete(_table).where(sa.false()))
                if not writes:
                    pass
                elif not done:
                    await forget_completion(session, name)
                else:
                    now = clock.now()
                    await record_completion(
                        session,
                        name,
                        completed_at=completed_at or now,
                        verified_at=now,
                        details={
                            "legacy_rows": await _rows(session, legacy_table),
                            **(details or {}),
                        },
                    )
                found = await session.scalar(sa.select(_table.c.name).where(_table.c.name == name))
                present = legacy_table is None or await table_exists(session, legacy_table)
    report.details["legacy_table"] = present
    report.details["complete"] = found is not None or not present or (report.dry_run and done)


async def _rows(session: AsyncSession, table: str | None) -> int:
    if table is None or not await table_exists(session, table):
        return 0
    return int(await session.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)
