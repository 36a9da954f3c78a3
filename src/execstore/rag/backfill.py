"""Backfill: legacy JSON rows -> normalized contexts, each verified before it counts.

``execstore backfill rag`` runs :func:`backfill_rag`. For every legacy row not yet
verified, one batch transaction at a time:

1. claims a batch (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers,
   in one process or many, share the work; SQLite has one writer: run one worker);
2. reads each row's context (camelCase or snake_case JSON; text fitted as on save) and
   maps its job and organization ids through :func:`execstore.ids.legacy_uuid`;
3. writes the normalized context when the job has none (a dual-write mode may already
   have written it), reads it back and compares it with the legacy one; only an equal
   round trip is marked in ``rag_backfill_verified``;
4. commits.

A row that cannot be moved — JSON that is not a context (missing fields, a rule twice,
a score out of range), a job that is gone or belongs to another organization, a
normalized copy that differs — is set aside with its reason, left as it was and tried
again by the next run. Re-running is always safe: verified rows are skipped, nothing is
written twice. A run that leaves every legacy row verified records the backfill's
completion, which ``contract_rag_rules`` requires before it drops the legacy table
(:mod:`execstore.operations.backfills`); a ``legacy``-mode write removes it again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import InvalidArgument, explain, translate_database_errors
from execstore.ids import legacy_uuid, legacy_uuid_sql
from execstore.operations.backfills import finish_backfill, table_exists
from execstore.operations.batch import BatchReport, Progress, SetAside, write_each
from execstore.rag import normalized
from execstore.rag.format import context_from_legacy
from execstore.rag.types import RagContext
from execstore.schema import models as m
from execstore.schema.rag import execution_rag_rules_legacy as legacy_table
from execstore.schema.rag import rag_backfill_verified as verified_table

__all__ = ["COUNTS", "backfill_rag", "count_remaining"]

COUNTS: Final = ("batches", "moved", "already_normalized", "remaining")
"""The counts of a ``backfill rag`` report: legacy rows moved and verified, found already
normalized by a dual write (and verified), legacy rows not yet verified."""


@dataclass(frozen=True, slots=True)
class _Item:
    legacy_id: str
    job_id: uuid.UUID
    organization_id: uuid.UUID
    context: RagContext


async def count_remaining(
    sessions: async_sessionmaker[AsyncSession], *, organization_id: uuid.UUID | None = None
) -> int:
    """Legacy rows not yet moved and verified (0 once ``contract_rag_rules`` dropped them).

    A verified mark whose legacy row was deleted counts for nothing.
    """
    async with sessions() as session:
        with translate_database_errors():
            if not await table_exists(session, legacy_table.name):
                return 0
            stmt = sa.select(sa.func.count()).select_from(legacy_table).where(~_is_verified())
            dialect = session.get_bind().dialect.name
            return int(await session.scalar(_of(stmt, dialect, organization_id)) or 0)


def _of(stmt: Any, dialect: str, organization_id: uuid.UUID | None) -> Any:
    """``stmt`` limited to the legacy rows of ``organization_id`` (None: every row)."""
    if organization_id is None:
        return stmt
    org = organization_id if dialect == "postgresql" else str(organization_id)
    return stmt.where(legacy_uuid_sql(legacy_table.c.organization_id, dialect) == org)


def _is_verified() -> sa.ColumnElement[bool]:
    return sa.exists(
        sa.select(sa.literal(1)).where(verified_table.c.legacy_id == legacy_table.c.id)
    )


async def backfill_rag(
    sessions: async_sessionmaker[AsyncSession],
    *,
    batch_size: int = 200,
    limit: int | None = None,
    workers: int = 1,
    organization_id: uuid.UUID | None = None,
    replace_differing: bool = False,
    dry_run: bool = False,
    on_progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> BatchReport:
    """Move and verify up to ``limit`` legacy rows, ``batch_size`` per commit, ``workers`` at once.

    Works across organizations (or only ``organization_id``'s rows). A normalized copy
    that differs from its legacy row is set aside, or with ``replace_differing``
    rewritten from the legacy row (for rows changed in the ``legacy`` mode after they
    were moved). Once ``contract_rag_rules`` dropped the legacy table there is nothing
    to do: the report says complete. With ``dry_run`` every batch is done and verified
    as usual, then rolled back: the report says what a real run would move and set
    aside, and nothing changes. Verification marks are stamped with the clock's time.
    """
    if batch_size < 1 or workers < 1:
        raise InvalidArgument("batch_size and workers must be at least 1")
    report = BatchReport.start("backfill rag", *COUNTS, dry_run=dry_run)
    total = None
    if on_progress is not None:
        total = await count_remaining(sessions, organization_id=organization_id)
        total = total if limit is None else min(total, limit)
    budget = [limit]

    def take(n: int) -> int:
        if budget[0] is None:
            return n
        n = min(n, budget[0])
        budget[0] -= n
        return n

    async def worker() -> None:
        after = ""
        while (size := take(batch_size)) > 0:
            async with sessions() as session:
                with translate_database_errors():
                    transaction = await session.begin()
                    try:
                        claimed = await _claim(session, size, after, organization_id)
                        if not claimed:
                            return
                        after = claimed[-1].id
                        moved, found, aside = await _move_batch(
                            session, claimed, replace=replace_differing, at=clock.now()
                        )
                    except BaseException:
                        await transaction.rollback()
                        raise
                    if dry_run:
                        await transaction.rollback()
                    else:
                        await transaction.commit()
            report.add(batches=1, moved=moved, already_normalized=found)
            report.set_aside.extend(aside)
            if on_progress is not None:
                done = report.counts["moved"] + report.counts["already_normalized"]
                on_progress(done + len(report.set_aside), total)

    async with sessions() as session:
        with translate_database_errors():
            present = await table_exists(session, legacy_table.name)
    if present:  # else contract_rag_rules ran: all done
        await asyncio.gather(*(worker() for _ in range(workers)))
    await finish_backfill(
        sessions,
        report,
        "rag",
        remaining=await count_remaining(sessions, organization_id=organization_id),
        everywhere=None if organization_id is None else await count_remaining(sessions),
        legacy_table=legacy_table.name,
        clock=clock,
    )
    return report


async def _claim(
    session: AsyncSession, size: int, after: str, organization_id: uuid.UUID | None
) -> Sequence[sa.Row[Any]]:
    dialect = session.get_bind().dialect.name
    stmt = (
        sa.select(legacy_table)
        .where(legacy_table.c.id > after, ~_is_verified())
        .order_by(legacy_table.c.id)
        .limit(size)
    )
    stmt = _of(stmt, dialect, organization_id)
    if dialect == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=legacy_table)
    return (await session.execute(stmt)).all()


async def _move_batch(
    session: AsyncSession, rows: Sequence[sa.Row[Any]], *, replace: bool, at: dt.datetime
) -> tuple[int, int, list[SetAside]]:
    aside: list[SetAside] = []
    items: list[_Item] = []
    for row in rows:
        try:
            items.append(
                _Item(
                    legacy_id=row.id,
                    job_id=legacy_uuid(row.job_id),
                    organization_id=legacy_uuid(row.organization_id),
                    context=context_from_legacy(row._mapping),
                )
            )
        except Exception as exc:  # bad JSON or ids: this row waits, the batch goes on
            aside.append(SetAside(row.id, f"InvalidRagContext: {explain(exc)}"))
    owners = dict(
        (
            await session.execute(
                sa.select(m.Job.id, m.Job.organization_id).where(
                    m.Job.id.in_([i.job_id for i in items])
                )
            )
        ).all()
    )
    ready = []
    for item in items:
        owner = owners.get(item.job_id)
        if owner is None:
            aside.append(SetAside(item.legacy_id, f"NotFound: job {item.job_id} does not exist"))
        elif owner != item.organization_id:
            aside.append(
                SetAside(
                    item.legacy_id,
                    f"Conflict: job {item.job_id} belongs to another organization than the row",
                )
            )
        else:
            ready.append(item)
    present: list[_Item] = []

    async def write(batch: Sequence[_Item]) -> None:
        for item in batch:
            stored = await normalized.fetch(session, item.organization_id, item.job_id)
            if stored is None:
                await normalized.insert(session, item.organization_id, item.job_id, item.context)
                stored = await normalized.fetch(session, item.organization_id, item.job_id)
            elif stored != item.context and replace:
                await session.execute(
                    sa.delete(m.ExecutionRagContext).where(
                        m.ExecutionRagContext.job_id == item.job_id
                    )
                )
                await normalized.insert(session, item.organization_id, item.job_id, item.context)
                stored = await normalized.fetch(session, item.organization_id, item.job_id)
            elif item not in present:
                present.append(item)
            if stored != item.context:
                raise ValueError(
                    f"normalized context of job {item.job_id} differs from the legacy row "
                    "(--replace-differing rewrites it from legacy)"
                )
        await session.execute(
            sa.insert(verified_table),
            [{"legacy_id": item.legacy_id, "verified_at": at} for item in batch],
        )

    done, refused = await write_each(session, ready, write, lambda item: item.legacy_id)
    found = sum(1 for item in done if item in present)
    return len(done) - found, found, aside + refused
