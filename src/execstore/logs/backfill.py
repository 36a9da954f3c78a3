"""The online migration from the legacy ``execution_log``: ``execstore backfill logs``.

Old writers may keep inserting into the legacy table the whole time; nothing is lost or
copied twice:

1. **start**: an index on ``(timestamp, id)`` is built (``CONCURRENTLY`` on PostgreSQL),
   then, in one transaction, the state row and the capture trigger (see
   :mod:`execstore.logs.legacy`);
2. **copy** in time-ordered batches, one transaction each: lock the state row, apply
   the queued changes, read the next rows after the cursor, move them (job ids mapped
   through :func:`execstore.ids.legacy_uuid`, lines validated like ``append``, negative
   ids so they sort before and stay apart from new lines), advance the cursor. Rows
   that cannot move (their job is gone, an unknown level) are set aside in the queue,
   reported, left in the legacy table and retried on every run;
3. **swap**, atomically: one transaction locks the legacy table against writes (``SHARE
   ROW EXCLUSIVE``, under ``lock_timeout``), copies what is left, applies every queued
   change, replaces the capture trigger with one refusing inserts and updates (old
   writers get a clear error instead of writing where nobody reads) and records the
   swap;
4. **verify**: the legacy rows (but the set-aside ones) and the moved lines are read
   in full and compared by count and an order-free checksum of their content; only if
   both agree are the legacy rows deleted. A mismatch is set aside per job and nothing
   is deleted.

A run that ends verified with no row set aside records the backfill's completion
(:mod:`execstore.operations.backfills`); then ``contract_execution_log`` can drop the
legacy table. The phase and the queue stay as the per-row state a run resumes from.

Every step is resumable: a crash leaves the state row, the cursor and the queue where
the last committed transaction put them. Log archival waits while steps 1-3 and the
verification are pending (the checksum reads the moved lines hot).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import uuid
from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import InvalidArgument, translate_database_errors
from execstore.ids import legacy_uuid
from execstore.logs import legacy as old
from execstore.logs.ingest import sqlite_write_lock, write_lines
from execstore.logs.prepare import PreparedLine
from execstore.logs.steps import resolve_steps
from execstore.operations.backfills import finish_backfill, table_exists
from execstore.operations.batch import BatchReport, Progress, SetAside
from execstore.schema import models as m
from execstore.schema.partitions import month_start

__all__ = ["COUNTS", "FIRST_ID", "BackfillPhase", "backfill_logs", "count_remaining"]

FIRST_ID: Final = -(2**62)
_SETASIDE_SHOWN: Final = 1000
_EVERY_MONTH: Final = dt.datetime.max.replace(tzinfo=dt.UTC)
_state = m.ExecutionLogBackfill
_change = m.ExecutionLogBackfillChange
_entry_table: sa.Table = m.ExecutionLogEntry.__table__  # type: ignore[assignment]
_step = m.ExecutionLogStep


class BackfillPhase(enum.IntEnum):
    """Where the migration stands (``execution_log_backfill.phase``)."""

    NOT_STARTED = 0
    COPYING = 1
    SWAPPED = 2
    VERIFIED = 3


COUNTS: Final = (
    "legacy_rows",
    "moved",
    "changes_applied",
    "legacy_checked",
    "moved_checked",
    "legacy_rows_removed",
    "set_aside",
    "remaining",
)
"""The counts of a ``backfill logs`` report: legacy rows at the start, lines copied this
run, queued changes applied, lines compared on each side by the verification, legacy
rows removed after it, rows set aside in all (the report lists the first 1,000), legacy
rows left. ``details``: ``phase``, ``swapped`` and ``verified`` (this run),
``checksum``."""


async def count_remaining(
    sessions: async_sessionmaker[AsyncSession], *, organization_id: uuid.UUID | None = None
) -> int:
    """Rows left in the legacy ``execution_log`` (0 once the contract dropped it).

    The legacy rows stay until the verification empties the table (all organizations
    at once): ``organization_id`` is accepted for the one protocol's sake and ignored.
    """
    del organization_id
    async with sessions() as session:
        with translate_database_errors():
            if not await table_exists(session, old.legacy.name):
                return 0
            return int(
                await session.scalar(sa.select(sa.func.count()).select_from(old.legacy)) or 0
            )


async def backfill_logs(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    *,
    batch_size: int = 5000,
    swap: bool = True,
    dry_run: bool = False,
    lock_timeout_seconds: float = 30.0,
    pause_seconds: float = 0.0,
    on_progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> BatchReport:
    """Move the legacy log rows (see the module docstring); resumable, safe to re-run.

    ``pause_seconds`` between batches leaves room for the writers still using the legacy
    table (SQLite has one writer at a time; on PostgreSQL it throttles the load). The
    phases' start, swap and verification times are the clock's. With ``dry_run`` the
    report says where the migration stands.
    """
    if batch_size < 1:
        raise InvalidArgument("batch_size must be at least 1")
    report = BatchReport.start("backfill logs", *COUNTS, dry_run=dry_run)
    report.details.update(swapped=False, verified=False, checksum=None)
    run = _Run(engine, sessions, report, batch_size, on_progress, clock)
    phase = await run.phase()
    if await run.legacy_exists():
        phase = await run.migrate(phase, swap, lock_timeout_seconds, pause_seconds)
    report.details["phase"] = phase.name.lower()
    await finish_backfill(
        sessions,
        report,
        "logs",
        remaining=await count_remaining(sessions),
        legacy_table=old.legacy.name,
        clock=clock,
        verified=phase == BackfillPhase.VERIFIED,
        completed_at=await run.swapped_at(),
    )
    return report


class _Run:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        report: BatchReport,
        batch_size: int,
        on_progress: Progress | None,
        clock: Clock,
    ) -> None:
        self.clock = clock
        self.engine = engine
        self.sessions = sessions
        self.report = report
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.dialect = engine.dialect.name
        self.total: int | None = None

    async def migrate(
        self, phase: BackfillPhase, swap: bool, lock_timeout: float, pause: float
    ) -> BackfillPhase:
        """Take the migration as far as it goes from ``phase``; the phase it ends in."""
        self.report.counts["legacy_rows"] = await count_remaining(self.sessions)
        self.total = self.report.counts["legacy_rows"]
        if self.report.dry_run:
            await self.count_set_aside()
            return phase
        if phase == BackfillPhase.NOT_STARTED:
            await self.start()
            phase = BackfillPhase.COPYING
        if phase == BackfillPhase.COPYING:
            await self.retry_set_aside()
            while await self.copy_batch():
                if pause:
                    await asyncio.sleep(pause)
            if swap:
                await self.swap(lock_timeout)
                phase = BackfillPhase.SWAPPED
        if phase == BackfillPhase.SWAPPED:
            await self.verify()
            phase = await self.phase()
        elif phase == BackfillPhase.VERIFIED:
            await self.retry_set_aside(verified=True)
        await self.count_set_aside()
        return phase

    # -- state ---------------------------------------------------------------------------

    async def legacy_exists(self) -> bool:
        async with self.engine.connect() as conn:
            return await table_exists(conn, old.legacy.name)

    async def swapped_at(self) -> dt.datetime | None:
        async with self.sessions() as session:
            with translate_database_errors():
                found = await session.scalar(sa.select(_state.swapped_at).where(_state.id == 1))
        return found  # timestamptz: aware on both backends

    async def phase(self) -> BackfillPhase:
        async with self.sessions() as session:
            with translate_database_errors():
                found = await session.scalar(sa.select(_state.phase).where(_state.id == 1))
        return BackfillPhase(found or 0)

    async def count_set_aside(self) -> None:
        async with self.sessions() as session:
            with translate_database_errors():
                total = await session.scalar(
                    sa.select(sa.func.count()).select_from(_change).where(_change.op == "R")
                )
                shown = (
                    await session.execute(
                        sa.select(_change.legacy_id, _change.reason)
                        .where(_change.op == "R")
                        .order_by(_change.seq)
                        .limit(_SETASIDE_SHOWN)
                    )
                ).all()
        self.report.counts["set_aside"] = int(total or 0)
        self.report.set_aside = [SetAside(str(i), str(r)) for i, r in shown] + [
            s for s in self.report.set_aside if s.key.startswith("job ")
        ]

    async def _lock_state(self, session: AsyncSession) -> m.ExecutionLogBackfill:
        # On SQLite, take the write lock first: reads then see what its last holder wrote.
        await sqlite_write_lock(session)
        state = await session.scalar(sa.select(_state).where(_state.id == 1).with_for_update())
        assert state is not None
        return state

    async def _ddl(self, session: AsyncSession, statements: Sequence[str]) -> None:
        for statement in statements:
            await session.execute(sa.text(statement))

    # -- 1. start ------------------------------------------------------------------------

    async def start(self) -> None:
        index = (
            "CREATE INDEX {} IF NOT EXISTS ix_execution_log_backfill "
            'ON execution_log ("timestamp", id)'
        )
        if self.dialect == "postgresql":
            async with self.engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                with translate_database_errors():
                    await auto.exec_driver_sql(index.format("CONCURRENTLY"))
        async with self.sessions() as session:
            with translate_database_errors():
                async with session.begin():
                    if self.dialect == "sqlite":
                        await sqlite_write_lock(session)
                        await session.execute(sa.text(index.format("")))
                    if await session.scalar(sa.select(_state.id).where(_state.id == 1)):
                        return  # a concurrent run started it
                    session.add(
                        _state(
                            id=1,
                            phase=int(BackfillPhase.COPYING),
                            next_id=FIRST_ID,
                            copied=0,
                            started_at=self.clock.now(),
                        )
                    )
                    await session.flush()
                    await self._ddl(session, old.CAPTURE_DDL[self.dialect])

    # -- 2. copy -------------------------------------------------------------------------

    async def copy_batch(self) -> int:
        """Move the next batch; how many legacy rows it read (0: caught up)."""
        async with self.sessions() as session:
            with translate_database_errors():
                async with session.begin():
                    state = await self._lock_state(session)
                    if state.phase != BackfillPhase.COPYING:
                        return 0
                    await self._apply_changes(session, state, ops=("I", "D"))
                    read = await self._copy_next(session, state)
        if self.on_progress is not None:
            self.on_progress(self.report.counts["moved"], self.total)
        return read

    async def _copy_next(self, session: AsyncSession, state: m.ExecutionLogBackfill) -> int:
        raw_ts = sa.cast(old.legacy.c.timestamp, sa.Text) if self.dialect == "sqlite" else None
        columns = [*old.legacy_columns(), *([raw_ts.label("raw_ts")] if raw_ts is not None else [])]
        stmt = sa.select(*columns).order_by(old.legacy.c.timestamp, old.legacy.c.id)
        if state.cursor_ts is not None:
            if self.dialect == "postgresql":
                after = sa.cast(sa.literal(state.cursor_ts), sa.DateTime())
                stmt = stmt.where(
                    sa.tuple_(old.legacy.c.timestamp, old.legacy.c.id)
                    > sa.tuple_(after, sa.literal(state.cursor_id))
                )
            else:
                stmt = stmt.where(
                    sa.tuple_(sa.literal_column('"timestamp"'), old.legacy.c.id)
                    > sa.tuple_(sa.literal(state.cursor_ts), sa.literal(state.cursor_id))
                )
        rows = (await session.execute(stmt.limit(self.batch_size))).all()
        if not rows:
            return 0
        contents = [old.content_of(row) for row in rows]
        await self._move(session, state, contents, set_aside_new=True)
        last = rows[-1]
        state.cursor_ts = last.raw_ts if raw_ts is not None else last.timestamp.isoformat()
        state.cursor_id = last.id
        await session.flush()
        return len(rows)

    async def _workflows(
        self, session: AsyncSession, contents: Sequence[dict[str, Any]]
    ) -> dict[uuid.UUID, uuid.UUID]:
        ids = set()
        for content in contents:
            if isinstance(content.get("job_id"), str):
                ids.add(legacy_uuid(content["job_id"]))
        if not ids:
            return {}
        rows = await session.execute(
            sa.select(m.Job.id, m.Job.workflow_id).where(m.Job.id.in_(ids))
        )
        return dict(rows.all())

    async def _move(
        self,
        session: AsyncSession,
        state: m.ExecutionLogBackfill,
        contents: Sequence[dict[str, Any]],
        *,
        set_aside_new: bool,
    ) -> list[int | None]:
        """Copy ``contents``; per content the new line's id, or None if it was set aside."""
        workflows = await self._workflows(session, contents)
        mapped: list[tuple[uuid.UUID, uuid.UUID, PreparedLine] | None] = []
        for content in contents:
            try:
                mapped.append(old.map_content(content, workflows))
            except ValueError as exc:
                mapped.append(None)
                if set_aside_new:
                    session.add(
                        _change(
                            op="R",
                            legacy_id=str(content["id"]),
                            row=content,
                            reason=str(exc),
                            attempts=1,
                        )
                    )
        keys = {(wf, *line.step) for item in mapped if item is not None for _, wf, line in [item]}
        steps = await resolve_steps(session, self.sessions, keys) if keys else {}
        rows = []
        ids: list[int | None] = []
        for item in mapped:
            if item is None:
                ids.append(None)
                continue
            job, workflow, line = item
            new_id = state.next_id
            state.next_id += 1
            ids.append(new_id)
            rows.append(
                (
                    line.timestamp,
                    new_id,
                    job,
                    steps[(workflow, *line.step)],
                    line.duration_ms,
                    line.level,
                    line.message,
                    line.metadata,
                )
            )
        if rows:
            await session.flush()
            # Legacy lines are old: the month may have no partition (created on the spot)
            # or be detached by archival meanwhile, whatever the date: every month is risky.
            await write_lines(
                session,
                self.sessions,
                lambda: rows,
                months={month_start(row[0]) for row in rows},
                risky_before=_EVERY_MONTH,
                with_ids=True,
            )
        state.copied += len(rows)
        self.report.add(moved=len(rows))
        return ids

    async def _apply_changes(
        self,
        session: AsyncSession,
        state: m.ExecutionLogBackfill,
        *,
        ops: tuple[str, ...],
        remove_legacy: bool = False,
    ) -> None:
        """Apply queued changes in order: I/R copy their content, D removes one copy."""
        after = 0
        while True:
            changes = (
                await session.scalars(
                    sa.select(_change)
                    .where(_change.op.in_(ops), _change.seq > after)
                    .order_by(_change.seq)
                    .limit(self.batch_size)
                )
            ).all()
            if not changes:
                return
            after = changes[-1].seq
            pending: list[m.ExecutionLogBackfillChange] = []
            for change in changes:
                if change.op == "D":
                    await self._copy_changes(session, state, pending, remove_legacy)
                    pending = []
                    await self._undo(session, change)
                else:
                    pending.append(change)
            await self._copy_changes(session, state, pending, remove_legacy)

    async def _copy_changes(
        self,
        session: AsyncSession,
        state: m.ExecutionLogBackfill,
        changes: list[m.ExecutionLogBackfillChange],
        remove_legacy: bool,
    ) -> None:
        if not changes:
            return
        ids = await self._move(session, state, [c.row for c in changes], set_aside_new=False)
        workflows = await self._workflows(session, [c.row for c in changes])
        for change, new_id in zip(changes, ids, strict=True):
            if new_id is None:
                try:
                    old.map_content(change.row, workflows)
                except ValueError as exc:
                    change.reason = str(exc)
                change.op = "R"
                change.attempts += 1
                continue
            self.report.add(changes_applied=1)
            await session.delete(change)
            if remove_legacy:
                await session.execute(
                    sa.delete(old.legacy).where(old.legacy.c.id == change.legacy_id)
                )
        await session.flush()

    async def _undo(self, session: AsyncSession, change: m.ExecutionLogBackfillChange) -> None:
        """A legacy row deleted (or updated away) after it was copied: remove one copy."""
        self.report.add(changes_applied=1)
        content = change.row
        await session.delete(change)
        workflows = await self._workflows(session, [content])
        try:
            job, workflow, line = old.map_content(content, workflows)
        except ValueError:
            job = None
        if job is not None:
            steps = sa.select(_step.id).where(
                _step.workflow_id == workflow,
                _step.step_index == line.step[0],
                _step.name.is_not_distinct_from(line.step[1]),
            )
            copy = await session.scalar(
                sa.select(_entry_table.c.id)
                .where(
                    _entry_table.c.job_id == job,
                    _entry_table.c.id < 0,
                    _entry_table.c.timestamp == line.timestamp,
                    _entry_table.c.level == line.level,
                    _entry_table.c.message == line.message,
                    _entry_table.c.step_id.in_(steps),
                )
                .limit(1)
            )
            if copy is not None:
                await session.execute(
                    sa.delete(_entry_table).where(
                        _entry_table.c.job_id == job, _entry_table.c.id == copy
                    )
                )
                return
        # Never copied (it was set aside): stop retrying it.
        pending = await session.scalar(
            sa.select(_change.seq)
            .where(_change.op == "R", _change.legacy_id == change.legacy_id)
            .order_by(_change.seq)
            .limit(1)
        )
        if pending is not None:
            await session.execute(sa.delete(_change).where(_change.seq == pending))

    async def retry_set_aside(self, *, verified: bool = False) -> None:
        """Try the set-aside rows again (after verification: as the legacy table has them now)."""
        async with self.sessions() as session:
            with translate_database_errors():
                async with session.begin():
                    state = await self._lock_state(session)
                    if not verified:
                        await self._apply_changes(session, state, ops=("R",))
                        return
                    await self._retry_in_place(session, state)

    async def _retry_in_place(self, session: AsyncSession, state: m.ExecutionLogBackfill) -> None:
        changes = (
            await session.scalars(sa.select(_change).where(_change.op == "R").order_by(_change.seq))
        ).all()
        for change in changes:
            current = (
                await session.execute(
                    sa.select(*old.legacy_columns()).where(old.legacy.c.id == change.legacy_id)
                )
            ).first()
            if current is None:
                await session.delete(change)  # deleted by an operator: nothing left to move
                continue
            change.row = old.content_of(current)
            await self._copy_changes(session, state, [change], remove_legacy=True)

    # -- 3. swap -------------------------------------------------------------------------

    async def swap(self, lock_timeout_seconds: float) -> None:
        async with self.sessions() as session:
            with translate_database_errors():
                async with session.begin():
                    if self.dialect == "postgresql":
                        timeout = f"{int(lock_timeout_seconds * 1000)}ms"
                        await session.execute(sa.text(f"SET LOCAL lock_timeout = '{timeout}'"))
                        await session.execute(
                            sa.text("LOCK TABLE execution_log IN SHARE ROW EXCLUSIVE MODE")
                        )
                    state = await self._lock_state(session)
                    if state.phase != BackfillPhase.COPYING:
                        return
                    while await self._copy_next(session, state):
                        pass
                    await self._apply_changes(session, state, ops=("I", "D", "R"))
                    # Capture stays: legacy deletes (a job deletion) are still allowed and
                    # must reach the copies; inserts and updates are refused from now on.
                    await self._ddl(session, old.RETIRED_DDL[self.dialect])
                    state.phase = int(BackfillPhase.SWAPPED)
                    state.swapped_at = self.clock.now()
        self.report.details["swapped"] = True

    # -- 4. verify -----------------------------------------------------------------------

    async def verify(self) -> None:
        """Compare legacy and moved lines from one snapshot; if equal, empty the legacy table.

        Legacy deletes stay allowed (and captured) after the swap, so the snapshot's
        queued deletes are subtracted from the moved side: a line deleted in the legacy
        table but whose copy is not removed yet is not a mismatch.
        """
        async with self.sessions() as session:
            with translate_database_errors():
                # One snapshot for every read below (SQLite: one read transaction).
                isolation = "REPEATABLE READ" if self.dialect == "postgresql" else None
                await session.connection(
                    execution_options={"isolation_level": isolation} if isolation else None
                )
                jobs = dict((await session.execute(sa.select(m.Job.id, m.Job.workflow_id))).all())
                aside = set(
                    (
                        await session.scalars(sa.select(_change.legacy_id).where(_change.op == "R"))
                    ).all()
                )
                legacy_sums, legacy_n = await self._legacy_sums(session, jobs, aside)
                moved_sums, moved_n = await self._moved_sums(session)
                await self._subtract_queued_deletes(session, jobs, moved_sums)
                await session.rollback()
        self.report.counts.update(legacy_checked=legacy_n, moved_checked=moved_n)
        if legacy_sums != moved_sums:
            keys = set(legacy_sums) | set(moved_sums)
            for job in sorted(str(j) for j in keys if legacy_sums.get(j) != moved_sums.get(j)):
                self.report.aside(
                    f"job {job}",
                    "checksum differs between the legacy rows and the moved lines "
                    "(nothing was deleted; the next run verifies again)",
                )
            return
        total = sum(s for _, s in legacy_sums.values()) % 2**64
        self.report.details["checksum"] = f"{legacy_n}:{total:016x}"
        async with self.sessions() as session:
            with translate_database_errors():
                async with session.begin():
                    if self.dialect == "postgresql":
                        await session.execute(
                            sa.text("LOCK TABLE execution_log IN SHARE ROW EXCLUSIVE MODE")
                        )
                    state = await self._lock_state(session)
                    # Deletes since the snapshot: apply them, then stop capturing (the
                    # emptying below must not be queued as deletes of the copies).
                    await self._apply_changes(session, state, ops=("D",))
                    await self._ddl(session, old.capture_only(self.dialect))
                    stmt = sa.delete(old.legacy)
                    if aside:
                        stmt = stmt.where(old.legacy.c.id.not_in(aside))
                    removed = await session.execute(stmt)
                    self.report.counts["legacy_rows_removed"] = int(removed.rowcount or 0)  # type: ignore[attr-defined]
                    await self._ddl(session, old.RETIRED_INSERTS_ONLY_DDL[self.dialect])
                    state.phase = int(BackfillPhase.VERIFIED)
                    state.verified_at = self.clock.now()
        self.report.details["verified"] = True

    async def _legacy_sums(
        self, session: AsyncSession, jobs: dict[uuid.UUID, uuid.UUID], aside: set[str]
    ) -> tuple[dict[uuid.UUID, tuple[int, int]], int]:
        sums: dict[uuid.UUID, tuple[int, int]] = {}
        seen = 0
        result = await session.stream(sa.select(*old.legacy_columns()))
        async for row in result:
            if row.id in aside:
                continue
            content = old.content_of(row)
            try:
                job, _, line = old.map_content(content, jobs)
            except ValueError:
                # Not movable and not queued: count it under its raw job id, a mismatch.
                _add(sums, uuid.UUID(int=0), 1)
                continue
            seen += 1
            _add(sums, job, _hash_line(job, line))
        return sums, seen

    async def _moved_sums(
        self, session: AsyncSession
    ) -> tuple[dict[uuid.UUID, tuple[int, int]], int]:
        sums: dict[uuid.UUID, tuple[int, int]] = {}
        seen = 0
        table = _entry_table
        stmt = (
            sa.select(
                table.c.job_id,
                table.c.timestamp,
                table.c.level,
                table.c.message,
                table.c.metadata,
                table.c.duration_ms,
                _step.step_index,
                _step.name,
            )
            .join(_step, _step.id == table.c.step_id)
            .where(table.c.id < 0)
        )
        result = await session.stream(stmt)
        async for row in result:
            seen += 1
            digest = old.line_hash(
                row.job_id,
                row.timestamp,
                int(row.level),
                row.step_index,
                row.name,
                row.message,
                row.metadata,
                row.duration_ms,
            )
            _add(sums, row.job_id, digest)
        return sums, seen

    async def _subtract_queued_deletes(
        self,
        session: AsyncSession,
        jobs: dict[uuid.UUID, uuid.UUID],
        sums: dict[uuid.UUID, tuple[int, int]],
    ) -> None:
        rows = await session.scalars(sa.select(_change.row).where(_change.op == "D"))
        for content in rows.all():
            try:
                job, _, line = old.map_content(content, jobs)
            except ValueError:
                continue  # it was set aside, so it has no copy
            count, total = sums.get(job, (0, 0))
            sums[job] = (count - 1, (total - _hash_line(job, line)) % 2**64)
            if sums[job] == (0, 0):
                del sums[job]


def _hash_line(job: uuid.UUID, line: PreparedLine) -> int:
    return old.line_hash(
        job,
        line.timestamp,
        line.level,
        line.step[0],
        line.step[1],
        line.message,
        None if line.metadata is None else json.loads(line.metadata),
        line.duration_ms,
    )


def _add(sums: dict[uuid.UUID, tuple[int, int]], job: uuid.UUID, digest: int) -> None:
    count, total = sums.get(job, (0, 0))
    sums[job] = (count + 1, (total + digest) % 2**64)
