"""``uow.logs``: append a job's log lines, read them back wherever they live.

    async with store.unit(org_id) as uow:
        await uow.logs.append(job.id, [NewLogEntry("Opened claim", step_index=2)])
        page = await uow.logs.for_job(job.id, min_level=LogLevel.WARN)  # Page[LogEntry]
        more = await uow.logs.for_job(job.id, min_level=LogLevel.WARN, cursor=page.next_cursor)
        last = await uow.logs.tail(job.id, 20)

Lines older than the hot window move to compressed archive chunks (``execstore archive
logs``); ``for_job`` and ``tail`` merge hot and archived lines by id, in
``(timestamp, id)`` order, reading archives through the byte-bounded LRU cache, so a
caller never needs to know where a line lives. A job of another organization is
NotFound. Retention (how long archives are kept) is a per-organization setting stored
in the database.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa

from execstore.archival.pointers import archive_ref
from execstore.arguments import checks_arguments
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import (
    ArchiveMissing,
    InvalidLogQuery,
    InvalidRetention,
    NotFound,
    shown,
    translate_database_errors,
)
from execstore.logs.format import entry_from_record, find_job_lines, may_hold_job
from execstore.logs.ingest import PIPELINE_CHUNK, append_pipelined, sqlite_write_lock, write_lines
from execstore.logs.prepare import prepare_rows
from execstore.logs.steps import fill_steps, known_steps
from execstore.logs.types import LogEntry, LogRetention, NewLogEntry
from execstore.pages import DEFAULT_LIMIT, Page, check_limit, decode_cursor, encode_cursor
from execstore.repository import ScopedRepository, TransactionHooks
from execstore.schema import models as m
from execstore.schema.enums import LogLevel

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from execstore.blob import Archives

__all__ = [
    "MAX_RETENTION_DAYS",
    "LogRepository",
    "detached_tables",
    "entry_table_named",
]

MAX_RETENTION_DAYS: Final = 36_500
_JOB_FOR_APPEND_SQL: Final = (
    "SELECT workflow_id FROM jobs WHERE id = $1 AND organization_id = $2 FOR KEY SHARE"
)
_entry = m.ExecutionLogEntry
_step = m.ExecutionLogStep
_archive = m.ExecutionLogArchive
_entry_table: sa.Table = _entry.__table__  # type: ignore[assignment]
_detached_cache: dict[str, sa.Table] = {}
_CURSOR_KIND: Final = "logs"
Position = tuple[dt.datetime, int]
"""Where a page ends: the (timestamp, id) of its last line."""


def entry_table_named(name: str) -> sa.Table:
    """The log table's columns under another name (a detached partition)."""
    found = _detached_cache.get(name)
    if found is None:
        found = _detached_cache[name] = _entry_table.to_metadata(sa.MetaData(), name=name)
    return found


async def detached_tables(session: AsyncSession) -> list[sa.Table]:
    """Partitions detached for archival and not dropped yet (PostgreSQL; else [])."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    with translate_database_errors():
        names = (await session.scalars(sa.select(m.ExecutionLogDetached.table_name))).all()
    return [entry_table_named(name) for name in names]


@checks_arguments
class LogRepository(ScopedRepository[m.Job]):
    """Append and read the log lines of this organization's jobs."""

    model_type = m.Job

    def __init__(
        self,
        *,
        session: AsyncSession,
        organization_id: uuid.UUID,
        archives: Archives,
        hooks: TransactionHooks | None = None,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        hot_days: int = 30,
        default_retention_days: int = 365,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(session=session, organization_id=organization_id, hooks=hooks, clock=clock)
        self.archives = archives
        # Own short transactions for the step catalog and new partitions (PostgreSQL).
        self.sessions = sessions
        self.hot_days = hot_days
        self.default_retention_days = default_retention_days

    # -- writing -----------------------------------------------------------------------

    async def append(
        self, job_id: uuid.UUID, entries: Sequence[NewLogEntry | Mapping[str, Any]]
    ) -> int:
        """How many lines were appended to the job's log (all of ``entries``, or none).

        Raises NotFound for a job of another organization and InvalidLogEntry (naming
        the entry) for a line that cannot be stored; then nothing is written and the
        unit stays usable. The whole batch is checked before anything is sent. A line
        without a timestamp is stamped with the clock's time.
        """
        now = self.clock.now()
        await sqlite_write_lock(self.session)
        workflow = await self._workflow_of(job_id, lock=True)
        classic_savepoint = False
        postgres = self.session.get_bind().dialect.name == "postgresql"
        # Pipelined only with sessions of its own for the catalog and new partitions: the
        # unit's connection is busy with a COPY while the next chunk is prepared.
        if len(entries) > PIPELINE_CHUNK and postgres and self.sessions is not None:
            batch = entries if isinstance(entries, list | tuple) else list(entries)
            written = await append_pipelined(
                self.session, self.sessions, batch, now=now, job_id=job_id, workflow=workflow
            )
            if written:
                return len(batch)
            # A month vanished under the COPY (archival detached it): the classic way,
            # which creates it and retries, inside a savepoint of its own.
            classic_savepoint = True
        known = known_steps(self.session, workflow)
        rows, missing, months = prepare_rows(entries, now=now, job_id=job_id, steps=known)
        if not rows:
            return 0
        await fill_steps(self.session, self.sessions, workflow, rows, missing)
        risky = now - dt.timedelta(days=self.hot_days)
        await write_lines(
            self.session,
            self.sessions,
            lambda: rows,
            months=months,
            risky_before=risky,
            savepoint=classic_savepoint,
        )
        return len(rows)

    # -- reading -----------------------------------------------------------------------

    async def for_job(
        self,
        job_id: uuid.UUID,
        *,
        min_level: LogLevel | str | None = None,
        steps: Iterable[int | str] | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page[LogEntry]:
        """A page of the job's lines in ``(timestamp, id)`` order, hot and archived alike.

        ``min_level`` keeps lines at or above it; ``steps`` keeps lines whose step
        index (an int) or step name (a str) is listed; ``cursor`` is a previous page's
        ``next_cursor`` and ``limit`` follows :mod:`execstore.pages`. Raises NotFound for
        another organization's job, ArchiveMissing or ArchiveCorrupt when an archive the
        page needs cannot be read.
        """
        limit = check_limit(limit)
        after: Position | None = None
        if cursor is not None:
            at, line = decode_cursor(_CURSOR_KIND, cursor, (dt.datetime, int))
            after = (at, line)
        level = None if min_level is None else _as_level(min_level)
        wanted = _StepFilter(steps)
        await self._workflow_of(job_id, lock=False)
        hot = await self._hot(job_id, after, level, wanted, limit=limit + 1, newest=False)
        cold = await self._archived(job_id, after, level, wanted)
        merged = _merge(hot, cold)
        page = merged[:limit]
        more = len(merged) > limit
        next_cursor = (
            encode_cursor(_CURSOR_KIND, (page[-1].timestamp, page[-1].id))
            if more and page
            else None
        )
        return Page(items=page, next_cursor=next_cursor)

    async def tail(self, job_id: uuid.UUID, n: int = DEFAULT_LIMIT) -> list[LogEntry]:
        """The job's last ``n`` lines, oldest first (NotFound for another organization's job).

        ``n`` follows the limit rule of :mod:`execstore.pages` (1..MAX_LIMIT).
        """
        n = check_limit(n, name="n")
        await self._workflow_of(job_id, lock=False)
        hot = await self._hot(job_id, None, None, _StepFilter(None), limit=n, newest=True)
        cold = await self._archived(job_id, None, None, _StepFilter(None))
        return _merge(hot, cold)[-n:]

    # -- retention ---------------------------------------------------------------------

    async def retention(self) -> LogRetention:
        """The organization's log retention (its own setting, or the configured default)."""
        with translate_database_errors():
            days = await self.session.scalar(
                sa.select(m.ExecutionLogRetention.retention_days).where(
                    m.ExecutionLogRetention.organization_id == self.organization_id
                )
            )
        return LogRetention(
            organization_id=self.organization_id,
            retention_days=days if days is not None else self.default_retention_days,
            hot_days=self.hot_days,
            is_default=days is None,
        )

    async def set_retention(self, days: int | None) -> LogRetention:
        """Keep this organization's archived logs ``days`` days (None: the default again).

        Raises InvalidRetention for a retention shorter than the hot window (lines
        would be deleted before they are archived) or longer than 100 years.
        """
        if days is not None:
            if isinstance(days, bool) or not isinstance(days, int):
                raise InvalidRetention(
                    f"retention must be a whole number of days, not {shown(days)}"
                )
            if days < self.hot_days:
                raise InvalidRetention(
                    f"a retention of {days} days is shorter than the hot window of "
                    f"{self.hot_days} days (EXECSTORE_LOG_HOT_DAYS): logs would be deleted "
                    "before they are archived"
                )
            if days > MAX_RETENTION_DAYS:
                raise InvalidRetention(f"a retention of {days} days is over {MAX_RETENTION_DAYS}")
        table = m.ExecutionLogRetention
        with translate_database_errors():
            await self.session.execute(
                sa.delete(table).where(table.organization_id == self.organization_id)
            )
            if days is not None:
                await self.session.execute(
                    sa.insert(table).values(
                        organization_id=self.organization_id,
                        retention_days=days,
                        updated_at=self.clock.now(),
                    )
                )
        return await self.retention()

    # -- internals ---------------------------------------------------------------------

    async def _workflow_of(self, job_id: uuid.UUID, *, lock: bool) -> uuid.UUID:
        if lock and self.session.get_bind().dialect.name == "postgresql":
            # FOR KEY SHARE: a concurrent job deletion waits for this unit, then sees its
            # lines. The driver's own SQL through SQLAlchemy's connection: appends are hot,
            # and this skips compiling (~60 µs of the ~170 a text() statement costs). It
            # also begins the unit's transaction, which the COPY that follows (on the
            # driver's connection) must run inside.
            with translate_database_errors():
                connection = await self.session.connection()
                workflow = (
                    await connection.exec_driver_sql(
                        _JOB_FOR_APPEND_SQL, (job_id, self.organization_id)
                    )
                ).scalar()
        else:
            stmt = self._scoped(sa.select(m.Job.workflow_id).where(m.Job.id == job_id))
            with translate_database_errors():
                workflow = await self.session.scalar(stmt)
        if workflow is None:
            raise NotFound(f"jobs {job_id} not found")
        return workflow  # type: ignore[no-any-return]

    async def _hot(
        self,
        job_id: uuid.UUID,
        after: Position | None,
        level: int | None,
        wanted: _StepFilter,
        *,
        limit: int,
        newest: bool,
    ) -> list[LogEntry]:
        tables = [_entry_table, *await detached_tables(self.session)]
        found: list[LogEntry] = []
        for table in tables:
            stmt = (
                sa.select(
                    table.c.timestamp,
                    table.c.id,
                    table.c.level,
                    table.c.duration_ms,
                    table.c.message,
                    table.c.metadata,
                    _step.step_index,
                    _step.name,
                )
                .join(_step, _step.id == table.c.step_id)
                .where(table.c.job_id == job_id)
                .limit(limit)
            )
            if after is not None:
                stmt = stmt.where(sa.tuple_(table.c.timestamp, table.c.id) > after)
            if level is not None:
                stmt = stmt.where(table.c.level >= level)
            stmt = stmt.where(*wanted.clauses(_step.step_index, _step.name))
            order = (table.c.timestamp, table.c.id)
            stmt = stmt.order_by(*(c.desc() for c in order) if newest else order)
            rows = await self._read_hot(stmt, detached=table is not _entry_table)
            found += [
                LogEntry(
                    id=row.id,
                    job_id=job_id,
                    timestamp=row.timestamp,
                    level=LogLevel(row.level),
                    step_index=row.step_index,
                    step_name=row.name,
                    message=row.message,
                    metadata=row.metadata,
                    duration_ms=row.duration_ms,
                )
                for row in rows
            ]
        return found

    async def _read_hot(self, stmt: Any, *, detached: bool) -> list[Any]:
        with translate_database_errors():
            if not detached:
                return list((await self.session.execute(stmt)).all())
            try:
                # The archival job may drop this table between listing and reading it:
                # then its lines are already in archive chunks, which are read next.
                async with self.session.begin_nested():
                    return list((await self.session.execute(stmt)).all())
            except Exception as exc:
                if getattr(getattr(exc, "orig", None), "sqlstate", None) == "42P01":
                    return []
                raise

    async def _archived(
        self,
        job_id: uuid.UUID,
        after: Position | None,
        level: int | None,
        wanted: _StepFilter,
    ) -> list[LogEntry]:
        stmt = sa.select(_archive).where(
            _archive.organization_id == self.organization_id,
            _archive.first_job <= job_id,
            _archive.last_job >= job_id,
        )
        if after is not None:
            stmt = stmt.where(_archive.end_date >= after[0])
        with translate_database_errors():
            chunks = (await self.session.scalars(stmt.order_by(_archive.start_date))).all()
        found: list[LogEntry] = []
        for chunk in chunks:
            if not may_hold_job(bytes(chunk.job_keys), job_id):
                continue
            if chunk.lost:
                raise ArchiveMissing(chunk.blob_key)  # marked by the reconciler: no I/O
            payload = await self.archives.read_bytes(archive_ref(chunk))
            for record in find_job_lines(payload, job_id):
                entry = entry_from_record(record)
                if after is not None and (entry.timestamp, entry.id) <= after:
                    continue
                if level is not None and entry.level < level:
                    continue
                if not wanted.keeps(entry.step_index, entry.step_name):
                    continue
                found.append(entry)
        return found


def _as_level(value: LogLevel | str) -> int:
    try:
        return int(value if isinstance(value, LogLevel) else LogLevel.parse(value))
    except (KeyError, AttributeError) as exc:
        raise InvalidLogQuery(f"unknown level {shown(value)}") from exc


class _StepFilter:
    def __init__(self, steps: Iterable[int | str] | None) -> None:
        self.active = steps is not None
        items = list(steps or [])  # the argument check refused anything but an iterable
        if any(isinstance(s, bool) or not isinstance(s, int | str) for s in items):
            raise InvalidLogQuery(f"steps holds step indexes (int) and names (str): {shown(items)}")
        self.indexes = {s for s in items if isinstance(s, int) and not isinstance(s, bool)}
        self.names = {s for s in items if isinstance(s, str)}

    def clauses(self, index: Any, name: Any) -> list[Any]:
        if not self.active:
            return []
        return [sa.or_(index.in_(self.indexes), name.in_(self.names))]

    def keeps(self, index: int, name: str | None) -> bool:
        return not self.active or index in self.indexes or (name is not None and name in self.names)


def _merge(*groups: list[LogEntry]) -> list[LogEntry]:
    # A line can be both hot and archived between its archival and its partition's drop.
    by_id = {entry.id: entry for group in groups for entry in group}
    return sorted(by_id.values(), key=lambda e: (e.timestamp, e.id))
