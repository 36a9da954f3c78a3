"""Compare every legacy fat row with what the slim row and its joins return now.

For each row of ``execution_metadata_legacy`` (ids mapped through the one legacy-id
mapping) :func:`check_metadata` reads the slim view through the same joined query
``get`` uses and compares field by field. Each difference is classified:

- ``renamed``: a name (workflow, client name or NPI, insuree, account) differs while
  the id it hangs on agrees: the referenced row was edited after the legacy copy was
  taken, and dashboards now show the current name. Legitimate.
- ``progressed``: status, steps, timings or error differ in the way a run moves
  forward (the legacy row was still live, the slim row is as far or further and keeps
  what the legacy row already knew): the run went on after it was moved. Legitimate.
- ``recomputed``: ``progress_percent`` or ``account_count`` disagreed with the legacy
  row's own steps or account list; the slim schema derives them. Legitimate.
- ``fitted``: error text longer than the new column, stored with the truncation marker.
  Legitimate (a documented transformation).
- anything else is *unexplained*: ids that differ, a name without an id to join it
  through, an account list that is not the job's, a different creation time...

Legacy rows without a slim row are *unmigrated* (with the reason the backfill would
give), except rows whose job no longer exists: those are *orphaned* — the legacy
foreign key deleted such rows with their job until ``add_varchar_limits`` detached them
— and dropping them loses nothing a job still has. Unmigrated rows and unexplained
differences are set aside in the report (it needs attention). A complete check (not
limited to one organization) that is clean records the metadata backfill's completion
(:mod:`execstore.operations.backfills`), one that is not removes it; the contract
revision drops the legacy table only after a clean one, and only while the table holds
the rows it held then.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import InvalidArgument, translate_database_errors
from execstore.ids import legacy_uuid
from execstore.metadata.backfill import LEGACY_TABLE, check_references, plan_row
from execstore.metadata.repository import LIVE_STATUSES
from execstore.metadata.types import ExecutionView
from execstore.metadata.views import to_view, views_of_jobs_statement
from execstore.operations.backfills import finish_backfill, table_exists
from execstore.operations.batch import BatchReport, Progress, SetAside
from execstore.schema import models as m
from execstore.schema.enums import ExecutionStatus
from execstore.schema.metadata import execution_metadata_legacy
from execstore.textlimits import fit_text, limit_of

__all__ = ["COUNTS", "EXPLAINED", "Mismatch", "check_metadata", "compare"]

EXPLAINED: Final = {
    "renamed": "a referenced row was renamed or edited since the legacy copy (ids agree)",
    "progressed": "the run went on after it was moved",
    "recomputed": "a derived field disagreed with the legacy row's own data",
    "fitted": "text longer than the new column, stored with the truncation marker",
}
_legacy = execution_metadata_legacy
_slim: sa.Table = m.ExecutionMetadata.__table__  # type: ignore[assignment]
_LIMITS: Final = {
    "error_code": limit_of(m.ExecutionMetadata.error_code),
    "error_message": limit_of(m.ExecutionMetadata.error_message),
}
COUNTS: Final = (
    "legacy_rows",
    "compared",
    "identical",
    "unmigrated",
    "orphaned",
    "unexplained",
    *(f"explained_{kind}" for kind in EXPLAINED),
    "remaining",
)
"""The counts of a ``backfill metadata --check`` report: legacy rows read, compared with
their slim view, identical; unmigrated (no slim row), orphaned (job deleted: explained),
differences nothing explains and those of each legitimate kind."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One field of one row that differs between the legacy copy and the slim view."""

    legacy_id: str
    job_id: str
    field: str
    legacy: Any
    now: Any
    kind: str | None
    """A key of EXPLAINED, or None: unexplained."""


def _id(value: str | None) -> uuid.UUID | None:
    return None if value is None else legacy_uuid(value)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _rank(status: ExecutionStatus) -> int:
    if status in (ExecutionStatus.PENDING, ExecutionStatus.QUEUED):
        return 0
    return 1 if status is ExecutionStatus.RUNNING else 2


def _progressed(row: Any, view: ExecutionView) -> bool:
    try:
        before = ExecutionStatus.parse(row.status)
    except (KeyError, AttributeError):
        return False
    if before not in LIVE_STATUSES or _rank(view.status) < _rank(before):
        return False
    if _rank(view.status) == _rank(before) and view.completed_steps < (row.completed_steps or 0):
        return False
    return row.started_at is None or _utc(row.started_at) == view.started_at


def compare(row: Any, view: ExecutionView) -> list[Mismatch]:
    """Every difference between a legacy row and the slim view of its job, classified."""
    found: list[Mismatch] = []

    def differ(name: str, legacy: Any, now: Any, kind: str | None) -> None:
        if legacy != now:
            found.append(Mismatch(row.id, str(view.job_id), name, legacy, now, kind))

    same_id: dict[str, bool] = {}
    for name in (
        "organization_id",
        "workflow_id",
        "client_id",
        "claim_submission_id",
        "primary_account_id",
    ):
        legacy, now = _id(getattr(row, name)), getattr(view, name)
        same_id[name] = legacy == now and now is not None
        differ(name, legacy, now, None)

    def joined(name: str, legacy: Any, now: Any, through: str) -> None:
        differ(name, legacy, now, "renamed" if same_id[through] else None)

    joined("workflow_name", row.workflow_name, view.workflow_name, "workflow_id")
    joined("client_name", row.client_name, view.client_name, "client_id")
    joined("client_npi", row.client_npi, view.client_npi, "client_id")
    joined("insuree_name", row.insuree_name, view.insuree_name, "claim_submission_id")
    joined("insuree_id", row.insuree_id, view.insuree_id, "claim_submission_id")
    joined(
        "primary_account_name",
        row.primary_account_name,
        view.primary_account_name,
        "primary_account_id",
    )

    legacy_accounts = [legacy_uuid(a) for a in row.all_account_ids or []]
    differ("all_account_ids", legacy_accounts, view.all_account_ids, None)
    if legacy_accounts == view.all_account_ids:
        differ(
            "all_account_names",
            list(row.all_account_names or []),
            view.all_account_names,
            "renamed",
        )
        differ("account_count", row.account_count, view.account_count, "recomputed")

    differ("created_at", _utc(row.created_at), view.created_at, None)
    moved_on = _progressed(row, view)
    live_kind = "progressed" if moved_on else None
    try:
        status: Any = ExecutionStatus.parse(row.status)
    except (KeyError, AttributeError):
        status = row.status
    differ("status", status, view.status, live_kind)
    for name in ("total_steps", "completed_steps", "duration_ms"):
        differ(name, getattr(row, name), getattr(view, name), live_kind)
    for name in ("started_at", "completed_at"):
        differ(name, _utc(getattr(row, name)), getattr(view, name), live_kind)
    for name, limit in _LIMITS.items():
        legacy, now = getattr(row, name), getattr(view, name)
        fitted = fit_text(legacy, limit)
        if legacy != now and fitted == now:
            differ(name, legacy, now, "fitted")
        else:
            differ(name, legacy, now, live_kind)
    legacy_percent = None if row.progress_percent is None else Decimal(row.progress_percent)
    differ("progress_percent", legacy_percent, view.progress_percent, live_kind or "recomputed")
    return found


async def _views(session: AsyncSession, job_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Any]:
    dialect = session.get_bind().dialect.name
    stmt = views_of_jobs_statement(dialect)
    found = (await session.execute(stmt, {"job_ids": list(set(job_ids))})).mappings().all()
    return {row["job_id"]: to_view(row) for row in found}


async def _explain_unmigrated(session: AsyncSession, rows: list[Any], report: BatchReport) -> None:
    unmigrated: list[SetAside] = report.details["unmigrated"]
    plans = []
    for row in rows:
        planned = plan_row(row)
        if isinstance(planned, SetAside):
            unmigrated.append(planned)
        else:
            plans.append((row.id, planned))
    keep, refused = await check_references(session, plans)
    for aside in refused:
        if aside.reason.endswith("no longer exists") and aside.reason.startswith("job "):
            report.details["orphaned"].append(aside.key)
        else:
            unmigrated.append(aside)
    unmigrated += [SetAside(legacy_id, "not moved yet") for legacy_id, _ in keep]


async def check_metadata(
    sessions: async_sessionmaker[AsyncSession],
    *,
    batch_size: int = 500,
    organization_id: uuid.UUID | None = None,
    max_listed: int = 200,
    examples_per_kind: int = 5,
    on_progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> BatchReport:
    """The comparison of every legacy row (of ``organization_id``, or all) with its slim view.

    Unmigrated rows and unexplained differences are set aside (at most ``max_listed``
    differences listed, all counted); ``details`` lists the orphaned legacy ids,
    ``unexplained`` and a few ``examples`` of each explained kind (as :class:`Mismatch`).
    A complete check (``organization_id`` None) records the backfill's completion, at
    the clock's time, when it is clean (``details["recorded"]``), and removes it when not.
    """
    if batch_size < 1:
        raise InvalidArgument("batch_size must be at least 1")
    report = BatchReport.start("backfill metadata check", *COUNTS)
    report.details.update(unmigrated=[], orphaned=[], unexplained=[], examples=[])
    kinds: Counter[str] = Counter()
    async with sessions() as session:
        with translate_database_errors():
            present = await table_exists(session, LEGACY_TABLE)
    total = None
    if present and on_progress is not None:
        async with sessions() as session:
            with translate_database_errors():
                total = int(
                    await session.scalar(sa.select(sa.func.count()).select_from(_legacy)) or 0
                )
    after: str | None = None
    while present:
        async with sessions() as session:
            with translate_database_errors():
                stmt = sa.select(_legacy).order_by(_legacy.c.id).limit(batch_size)
                if after is not None:
                    stmt = stmt.where(_legacy.c.id > after)
                rows = (await session.execute(stmt)).all()
                if organization_id is not None:
                    rows_in_scope = [r for r in rows if _id(r.organization_id) == organization_id]
                else:
                    rows_in_scope = list(rows)
                views = await _views(session, (legacy_uuid(r.job_id) for r in rows_in_scope))
                missing = [r for r in rows_in_scope if legacy_uuid(r.job_id) not in views]
                await _explain_unmigrated(session, missing, report)
        if not rows:
            break
        after = rows[-1].id
        report.add(legacy_rows=len(rows_in_scope))
        for row in rows_in_scope:
            view = views.get(legacy_uuid(row.job_id))
            if view is None:
                continue
            report.add(compared=1)
            differences = compare(row, view)
            if not differences:
                report.add(identical=1)
            for mismatch in differences:
                if mismatch.kind is None:
                    report.add(unexplained=1)
                    if len(report.details["unexplained"]) < max_listed:
                        report.details["unexplained"].append(mismatch)
                else:
                    kinds[mismatch.kind] += 1
                    if kinds[mismatch.kind] <= examples_per_kind:
                        report.details["examples"].append(mismatch)
        if on_progress is not None:
            on_progress(report.counts["legacy_rows"], total)
    unmigrated = report.details.pop("unmigrated")
    report.add(unmigrated=len(unmigrated), orphaned=len(report.details["orphaned"]))
    report.add(**{f"explained_{kind}": n for kind, n in kinds.items()})
    report.set_aside += unmigrated
    report.set_aside += [
        SetAside(
            x.legacy_id,
            f"unexplained difference in {x.field}: legacy {x.legacy!r}, now {x.now!r}",
        )
        for x in report.details["unexplained"]
    ]
    unlisted = report.counts["unexplained"] - len(report.details["unexplained"])
    if unlisted:
        report.aside("…", f"{unlisted} more unexplained difference(s) (max_listed={max_listed})")
    clean = not report.needs_attention
    await finish_backfill(
        sessions,
        report,
        "metadata",
        remaining=len(unmigrated),
        legacy_table=LEGACY_TABLE,
        clock=clock,
        # Only a check of every organization says anything about the whole table.
        verified=True if organization_id is None and present else None,
        details={"compared": report.counts["compared"], "orphaned": report.counts["orphaned"]},
    )
    report.details["recorded"] = organization_id is None and present and clean
    return report
