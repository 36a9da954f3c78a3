"""Move legacy fat rows (``execution_metadata_legacy``) to slim rows, batch by batch.

Each batch is one transaction over up to ``batch_size`` legacy rows that have no slim
row yet, in legacy-id order:

1. every id is mapped through :func:`execstore.ids.legacy_uuid` (the one mapping: cuids,
   upper-case and braced uuids all land where ``add_varchar_limits`` put the jobs);
2. every row is checked before anything is written: a status the enum does not know, a
   step counter out of range, a job that no longer exists or belongs to another
   organization, a workflow, client, claim submission or primary account that is not
   the row's organization's: the row is *set aside* with that reason, left exactly as
   it is, and the rest of the batch goes on (:mod:`execstore.operations.batch`);
3. the others are inserted in one statement (``ON CONFLICT DO NOTHING``: a row the
   application or a concurrent run created meanwhile is left alone); if the database
   still refuses one, the batch is retried row by row and only that row is set aside.

Names, account arrays, ``progress_percent`` and ``updated_at`` are not copied: the slim
schema joins or derives them (``execstore backfill metadata --check`` compares them).
The legacy rows stay until ``contract_execution_metadata`` drops the table, so a run can
be stopped at any point and re-run: it finds only what is still unmoved, set-aside rows
included (fix the data, re-run). ``dry_run`` does all the checks and writes nothing.
The move is verified by :func:`execstore.metadata.check.check_metadata`, which records
the backfill's completion.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import InvalidArgument, translate_database_errors
from execstore.ids import legacy_uuid, legacy_uuid_sql
from execstore.metadata.repository import MAX_STEPS
from execstore.operations.backfills import finish_backfill, table_exists
from execstore.operations.batch import (
    BatchReport,
    Progress,
    SetAside,
    describe_failure,
    write_each,
)
from execstore.schema import models as m
from execstore.schema.enums import ExecutionStatus
from execstore.schema.metadata import execution_metadata_legacy

__all__ = [
    "COUNTS",
    "LEGACY_TABLE",
    "backfill_metadata",
    "check_references",
    "count_remaining",
    "plan_row",
    "unmoved_filter",
]

LEGACY_TABLE: Final = execution_metadata_legacy.name
_legacy = execution_metadata_legacy
_slim: sa.Table = m.ExecutionMetadata.__table__  # type: ignore[assignment]
_REFERENCES: Final = (
    ("workflow_id", m.Workflow, "workflow"),
    ("client_id", m.Client, "client"),
    ("claim_submission_id", m.ClaimSubmission, "claim submission"),
    ("primary_account_id", m.Credential, "primary account"),
)


COUNTS: Final = ("batches", "examined", "moved", "remaining")
"""The counts of a ``backfill metadata`` report: legacy rows examined (moved or set
aside), slim rows written, legacy rows of existing jobs still without a slim row."""


def mapped_job_id(dialect: str) -> sa.ColumnElement[Any]:
    """The legacy row's job id, mapped, as SQL."""
    return legacy_uuid_sql(_legacy.c.job_id, dialect)


def unmoved_filter(dialect: str) -> sa.ColumnElement[bool]:
    """SQL true for a legacy row whose job has no slim row."""
    return ~sa.exists().where(_slim.c.job_id == mapped_job_id(dialect))


def _scope(stmt: Any, dialect: str, organization_id: uuid.UUID | None) -> Any:
    if organization_id is None:
        return stmt
    mapped = legacy_uuid_sql(_legacy.c.organization_id, dialect)
    target: Any = organization_id if dialect == "postgresql" else str(organization_id)
    return stmt.where(mapped == target)


async def count_remaining(
    sessions: async_sessionmaker[AsyncSession], *, organization_id: uuid.UUID | None = None
) -> int:
    """Legacy rows of existing jobs without a slim row yet (0 when the table is gone).

    A legacy row whose job was deleted is not counted: it never moves, it goes with the
    table.
    """
    async with sessions() as session:
        with translate_database_errors():
            if not await table_exists(session, LEGACY_TABLE):
                return 0
            dialect = session.get_bind().dialect.name
            job = sa.exists().where(m.Job.id == mapped_job_id(dialect))
            stmt = sa.select(sa.func.count()).select_from(_legacy)
            stmt = stmt.where(unmoved_filter(dialect), job)
            return int(await session.scalar(_scope(stmt, dialect, organization_id)) or 0)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # Legacy timestamps are timestamp(3) without time zone, written in UTC.
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _id(value: str | None) -> uuid.UUID | None:
    return None if value is None else legacy_uuid(value)


def plan_row(row: Any) -> dict[str, Any] | SetAside:
    """The slim row for one legacy row, or why it cannot be moved (checks in Python only)."""
    try:
        status = ExecutionStatus.parse(row.status)
    except (KeyError, AttributeError):
        return SetAside(row.id, f"unknown status {row.status!r}")
    for name in ("total_steps", "completed_steps"):
        value = getattr(row, name)
        if value is None or not 0 <= int(value) <= MAX_STEPS:
            return SetAside(row.id, f"{name} {value!r} is outside 0..{MAX_STEPS}")
    duration = row.duration_ms
    if duration is not None and not -(2**31) <= int(duration) < 2**31:
        return SetAside(row.id, f"duration_ms {duration!r} does not fit an integer")
    try:
        return {
            "job_id": legacy_uuid(row.job_id),
            "organization_id": legacy_uuid(row.organization_id),
            "workflow_id": legacy_uuid(row.workflow_id),
            "client_id": _id(row.client_id),
            "claim_submission_id": _id(row.claim_submission_id),
            "primary_account_id": _id(row.primary_account_id),
            "status": status,
            "total_steps": int(row.total_steps),
            "completed_steps": int(row.completed_steps),
            "created_at": _utc(row.created_at),
            "started_at": _utc(row.started_at),
            "completed_at": _utc(row.completed_at),
            "duration_ms": duration,
            "error_code": row.error_code,
            "error_message": row.error_message,
        }
    except (TypeError, ValueError) as exc:
        return SetAside(row.id, describe_failure(exc))


async def _owners(
    session: AsyncSession, model: type[m.Base], ids: set[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    if not ids:
        return {}
    found = await session.execute(
        sa.select(model.id, model.organization_id).where(model.id.in_(ids))  # type: ignore[attr-defined]
    )
    return {row_id: org for row_id, org in found}


async def check_references(
    session: AsyncSession, plans: list[tuple[str, dict[str, Any]]]
) -> tuple[list[tuple[str, dict[str, Any]]], list[SetAside]]:
    """Keep the rows whose job and references exist in the row's organization."""
    jobs = await _owners(session, m.Job, {values["job_id"] for _, values in plans})
    owners = {
        column: await _owners(
            session, model, {v[column] for _, v in plans if v[column] is not None}
        )
        for column, model, _ in _REFERENCES
    }
    keep, aside = [], []
    for legacy_id, values in plans:
        org = values["organization_id"]
        job_org = jobs.get(values["job_id"])
        reason = None
        if job_org is None:
            reason = f"job {values['job_id']} no longer exists"
        elif job_org != org:
            reason = f"job {values['job_id']} belongs to organization {job_org}, the row says {org}"
        else:
            for column, _, label in _REFERENCES:
                ref = values[column]
                if ref is None:
                    continue
                owner = owners[column].get(ref)
                if owner is None:
                    reason = f"{label} {ref} does not exist"
                elif owner != org:
                    reason = f"{label} {ref} belongs to another organization"
                if reason:
                    break
        if reason:
            aside.append(SetAside(legacy_id, reason))
        else:
            keep.append((legacy_id, values))
    return keep, aside


async def _insert(session: AsyncSession, values: Sequence[dict[str, Any]]) -> int:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(_slim).on_conflict_do_nothing(index_elements=["job_id"])
    result = await session.execute(stmt.returning(_slim.c.job_id), list(values))
    return len(result.all())


async def _batch(
    session: AsyncSession,
    *,
    after: str | None,
    size: int,
    organization_id: uuid.UUID | None,
    report: BatchReport,
) -> str | None:
    dialect = session.get_bind().dialect.name
    stmt = sa.select(_legacy).where(unmoved_filter(dialect)).order_by(_legacy.c.id).limit(size)
    if after is not None:
        stmt = stmt.where(_legacy.c.id > after)
    rows = (await session.execute(_scope(stmt, dialect, organization_id))).all()
    if not rows:
        return None
    plans: list[tuple[str, dict[str, Any]]] = []
    aside: list[SetAside] = []
    for row in rows:
        planned = plan_row(row)
        if isinstance(planned, SetAside):
            aside.append(planned)
        else:
            plans.append((row.id, planned))
    keep, refused = await check_references(session, plans)
    aside += refused
    moved = 0
    if report.dry_run:
        moved = len(keep)
    elif keep:
        counted: list[int] = []

        async def write(items: Sequence[tuple[str, dict[str, Any]]]) -> None:
            counted.append(await _insert(session, [values for _, values in items]))

        _, failed = await write_each(session, keep, write, lambda item: item[0])
        aside += failed
        moved = sum(counted)  # a refused attempt raised before it could count
    report.add(batches=1, examined=len(rows), moved=moved)
    report.set_aside += aside
    return str(rows[-1].id)


async def backfill_metadata(
    sessions: async_sessionmaker[AsyncSession],
    *,
    batch_size: int = 500,
    limit: int | None = None,
    dry_run: bool = False,
    organization_id: uuid.UUID | None = None,
    on_progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> BatchReport:
    """The report of moving up to ``limit`` unmoved legacy rows, ``batch_size`` per commit.

    Works across organizations (or only ``organization_id``'s rows). Rows that cannot
    be moved are set aside and reported, never blocking the rest. The move is complete
    (``details["complete"]``) once ``execstore backfill metadata --check`` verified it.
    """
    if batch_size < 1:
        raise InvalidArgument("batch_size must be at least 1")
    report = BatchReport.start("backfill metadata", *COUNTS, dry_run=dry_run)
    total = None
    if on_progress is not None:
        total = await count_remaining(sessions, organization_id=organization_id)
        total = total if limit is None else min(total, limit)
    after: str | None = None
    async with sessions() as session:
        with translate_database_errors():
            present = await table_exists(session, LEGACY_TABLE)
    while present and (limit is None or report.counts["examined"] < limit):
        examined = report.counts["examined"]
        size = batch_size if limit is None else min(batch_size, limit - examined)
        async with sessions() as session:
            with translate_database_errors():
                async with session.begin():
                    after = await _batch(
                        session,
                        after=after,
                        size=size,
                        organization_id=organization_id,
                        report=report,
                    )
        if after is None:
            break
        if on_progress is not None:
            on_progress(report.counts["examined"], total)
    await finish_backfill(
        sessions,
        report,
        "metadata",
        remaining=await count_remaining(sessions, organization_id=organization_id),
        everywhere=None if organization_id is None else await count_remaining(sessions),
        legacy_table=LEGACY_TABLE,
        clock=clock,
        verified=None,  # the check verifies the move and records it
    )
    return report
