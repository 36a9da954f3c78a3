"""``execstore backfill audit``: legacy ``phi_audit_log`` rows into the compact chain.

Rows are taken in ``(organization, created_at, id)`` order, ``batch_size`` at a time
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several runs can share the work), mapped
(ids through :func:`execstore.ids.legacy_uuid`; a patient reference, claim id or purpose
found in ``details`` is also lifted into its own field, ``details`` itself unchanged),
appended to their organization's chain with their original time, and deleted from the
legacy table in the same transaction: a row is either still legacy or in the chain,
never both, never neither. Before an organization's first batch a dictionary is trained
on its legacy details. A row that cannot move (details that are not JSON, text that is
not Unicode, a job of another organization) is set aside: left in the legacy table,
reported with its reason, retried by the next run. A checkpoint of every chain the run
extended is written at the end; a run that leaves the legacy table empty records the
backfill's completion (:mod:`execstore.operations.backfills`).

Legacy records enter the chain when they are moved: an organization that recorded new
accesses before its backfill has those first. Chain order is the order records entered
the chain; ``created_at`` keeps the time of the access.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.audit.catalog import state_for
from execstore.audit.checkpoints import checkpoint_organizations
from execstore.audit.dictionaries import store_dictionary
from execstore.audit.format import canonical_details
from execstore.audit.writer import Pending, append, clean_text, source_address
from execstore.blob import Archives
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import InvalidArgument, translate_database_errors
from execstore.ids import legacy_uuid
from execstore.operations.backfills import finish_backfill, table_exists
from execstore.operations.batch import (
    BatchReport,
    Progress,
    SetAside,
    describe_failure,
    write_each,
)
from execstore.schema.audit import PhiAuditDictionary, phi_audit_log_legacy
from execstore.schema.reference import ClaimSubmission, Job

__all__ = ["COUNTS", "backfill_audit", "count_remaining"]

_LEGACY = phi_audit_log_legacy
_PATIENT_KEYS: Final = ("patient_ref", "patientRef", "patient_id", "patientId", "mrn")
_CLAIM_KEYS: Final = ("claim_id", "claimId", "claim_submission_id", "claimSubmissionId")
_SAMPLES: Final = 2000


COUNTS: Final = (
    "batches",
    "examined",
    "moved",
    "organizations",
    "dictionaries",
    "checkpoints",
    "remaining",
)
"""The counts of a ``backfill audit`` report: legacy rows examined (moved or set aside),
moved into a chain, organizations whose chain grew, dictionaries trained, checkpoints
written, legacy rows left."""


async def count_remaining(
    sessions: async_sessionmaker[AsyncSession], *, organization_id: uuid.UUID | None = None
) -> int:
    """Legacy rows still to move (all of them, or those whose organization maps to one)."""
    async with sessions() as session:
        with translate_database_errors():
            if not await table_exists(session, _LEGACY.name):
                return 0
            if organization_id is None:
                found = await session.scalar(sa.select(sa.func.count()).select_from(_LEGACY))
                return int(found or 0)
            orgs = (
                await session.execute(sa.select(_LEGACY.c.organization_id).distinct())
            ).scalars()
            wanted = [o for o in orgs if legacy_uuid(o) == organization_id]
            if not wanted:
                return 0
            found = await session.scalar(
                sa.select(sa.func.count()).where(_LEGACY.c.organization_id.in_(wanted))
            )
            return int(found or 0)


def _lifted(details: Any, keys: Sequence[str]) -> str | None:
    if not isinstance(details, dict):
        return None
    for key in keys:
        value = details.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _pending(row: Any, details: Any, text: str | None, codec: Any) -> Pending:
    """One legacy row as a record to append (raises on what cannot be stored)."""
    stored, encoding = codec.encode(text)
    claim = _lifted(details, _CLAIM_KEYS)
    purpose = details.get("purpose") if isinstance(details, dict) else None
    inet, raw_ip = source_address(clean_text(row.ip_address, "ip_address"))
    created = row.created_at
    return Pending(
        id=legacy_uuid(row.id),
        action=clean_text(row.action, "action") or "",
        resource_type=clean_text(row.resource_type, "resource_type") or "",
        resource_id=clean_text(row.resource_id, "resource_id"),
        actor=None if row.user_id is None else str(legacy_uuid(row.user_id)),
        patient=clean_text(_lifted(details, _PATIENT_KEYS), "patient_ref"),
        claim_id=None if claim is None else legacy_uuid(claim),
        job_id=None if row.job_id is None else legacy_uuid(row.job_id),
        purpose=clean_text(purpose, "purpose") if isinstance(purpose, str) and purpose else None,
        source_ip=inet,
        ip_text=raw_ip,
        user_agent=clean_text(row.user_agent, "user_agent"),
        details_text=text,
        details_stored=stored,
        encoding=encoding,
        created_at=created.replace(tzinfo=dt.UTC) if created.tzinfo is None else created,
    )


def _details(raw: Any) -> tuple[Any, str | None]:
    if raw is None:
        return None, None
    value = json.loads(raw) if isinstance(raw, str | bytes) else raw
    return value, canonical_details(value)


async def backfill_audit(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    *,
    batch_size: int = 500,
    organization_id: uuid.UUID | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    on_progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> BatchReport:
    """Move legacy audit rows into the chain (see the module docstring).

    Records keep their legacy times; ``clock`` stamps the dictionaries and checkpoints.
    """
    if batch_size < 1:
        raise InvalidArgument("batch_size must be at least 1")
    report = BatchReport.start("backfill audit", *COUNTS, dry_run=dry_run)
    total = None
    if on_progress is not None:
        total = await count_remaining(sessions, organization_id=organization_id)
        total = total if limit is None else min(total, limit)
    state = state_for(sessions)
    cursor: tuple[Any, Any, Any] | None = None
    touched: set[uuid.UUID] = set()
    trained: set[uuid.UUID] = set()
    while limit is None or report.counts["examined"] < limit:
        seen = report.counts["examined"]
        size = batch_size if limit is None else min(batch_size, limit - seen)
        async with sessions() as session:
            with translate_database_errors():
                if not await table_exists(session, _LEGACY.name):
                    break
                rows = await _claim(session, size, cursor, organization_id, lock=False)
                if not rows:
                    break
        cursor = (rows[-1].organization_id, rows[-1].created_at, rows[-1].id)
        groups: dict[uuid.UUID, list[Any]] = {}
        for row in rows:
            groups.setdefault(legacy_uuid(row.organization_id), []).append(row)
        for org, members in groups.items():
            if org not in trained and not dry_run:
                trained.add(org)
                report.add(dictionaries=await _train_if_missing(sessions, org, clock))
            step = await _move(sessions, state, org, members, dry_run, clock)
            report.add(moved=step.moved)
            report.set_aside.extend(step.set_aside)
            if step.moved:
                touched.add(org)
        report.add(batches=1, examined=len(rows))
        report.counts["organizations"] = len(touched)
        if on_progress is not None:
            on_progress(report.counts["examined"], total)
    if not dry_run:
        for org in sorted(touched, key=str):
            written = await checkpoint_organizations(
                sessions, archives, organization_id=org, clock=clock
            )
            report.add(checkpoints=written.counts["written"])
    await finish_backfill(
        sessions,
        report,
        "audit",
        remaining=await count_remaining(sessions, organization_id=organization_id),
        everywhere=None if organization_id is None else await count_remaining(sessions),
        legacy_table=_LEGACY.name,
        clock=clock,
    )
    return report


async def _claim(
    session: AsyncSession,
    size: int,
    cursor: tuple[Any, Any, Any] | None,
    organization_id: uuid.UUID | None,
    *,
    lock: bool,
) -> list[Any]:
    stmt = (
        sa.select(
            _LEGACY.c.id,
            _LEGACY.c.organization_id,
            _LEGACY.c.user_id,
            _LEGACY.c.job_id,
            _LEGACY.c.action,
            _LEGACY.c.resource_type,
            _LEGACY.c.resource_id,
            sa.cast(_LEGACY.c.details, sa.Text).label("details"),
            _LEGACY.c.ip_address,
            _LEGACY.c.user_agent,
            _LEGACY.c.created_at,
        )
        .order_by(_LEGACY.c.organization_id, _LEGACY.c.created_at, _LEGACY.c.id)
        .limit(size)
    )
    if cursor is not None:
        stmt = stmt.where(
            sa.tuple_(_LEGACY.c.organization_id, _LEGACY.c.created_at, _LEGACY.c.id)
            > sa.tuple_(*(sa.literal(v) for v in cursor))
        )
    if organization_id is not None:
        orgs = (await session.execute(sa.select(_LEGACY.c.organization_id).distinct())).scalars()
        wanted = [o for o in orgs if legacy_uuid(o) == organization_id]
        stmt = stmt.where(_LEGACY.c.organization_id.in_(wanted or [""]))
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.execute(stmt)).all())


@dataclass(slots=True)
class _Step:
    moved: int = 0
    set_aside: list[SetAside] = field(default_factory=list)


async def _move(
    sessions: async_sessionmaker[AsyncSession],
    state: Any,
    org: uuid.UUID,
    rows: list[Any],
    dry_run: bool,
    clock: Clock,
) -> _Step:
    step = _Step()
    async with sessions() as session:
        with translate_database_errors():
            codec = await state.codec(session, org)
            foreign = await _foreign_ids(session, org, rows)
    prepared: list[tuple[Any, Pending]] = []
    for row in rows:
        try:
            problem = foreign.get(row.job_id)
            if problem:
                raise LookupError(problem)
            details, text = _details(row.details)
            pending = _pending(row, details, text, codec)
            if pending.claim_id is not None and pending.claim_id in foreign.get("claims", set()):
                raise LookupError(
                    f"claim submission {pending.claim_id} belongs to another organization"
                )
            prepared.append((row, pending))
        except Exception as exc:  # set aside: this row stays legacy, the rest moves
            step.set_aside.append(SetAside(str(row.id), describe_failure(exc)))
    if dry_run or not prepared:
        step.moved = 0 if not dry_run else len(prepared)
        return step
    async with sessions() as session:
        with translate_database_errors():
            async with session.begin():
                if session.get_bind().dialect.name == "sqlite":
                    # Take the write lock before reading (no stale snapshot to upgrade).
                    await session.execute(sa.delete(_LEGACY).where(sa.false()))
                still = set(
                    (
                        await session.scalars(
                            sa.select(_LEGACY.c.id)
                            .where(_LEGACY.c.id.in_([row.id for row, _ in prepared]))
                            .with_for_update(skip_locked=True)
                            if session.get_bind().dialect.name == "postgresql"
                            else sa.select(_LEGACY.c.id).where(
                                _LEGACY.c.id.in_([row.id for row, _ in prepared])
                            )
                        )
                    ).all()
                )
                mine = [(row, p) for row, p in prepared if row.id in still]  # others took the rest

                async def write(items: Sequence[tuple[Any, Pending]]) -> None:
                    appended = await append(session, org, [p for _, p in items], state, clock=clock)
                    ids_cache.update(appended.catalog_ids)
                    await session.execute(
                        sa.delete(_LEGACY).where(_LEGACY.c.id.in_([row.id for row, _ in items]))
                    )

                ids_cache: dict[tuple[int, str], int] = {}
                done, aside = await write_each(session, mine, write, lambda item: str(item[0].id))
        state.catalog.remember(org, ids_cache)
    step.moved = len(done)
    step.set_aside.extend(aside)
    return step


async def _foreign_ids(session: AsyncSession, org: uuid.UUID, rows: list[Any]) -> dict[Any, Any]:
    """Legacy job ids (and mapped claim ids) that name another organization's rows."""
    found: dict[Any, Any] = {}
    jobs = {legacy_uuid(r.job_id): r.job_id for r in rows if r.job_id is not None}
    if jobs:
        others = await session.scalars(
            sa.select(Job.id).where(Job.id.in_(jobs), Job.organization_id != org)
        )
        for job in others:
            found[jobs[job]] = f"job {job} belongs to another organization"
    claims: set[uuid.UUID] = set()
    for row in rows:
        try:
            value = json.loads(row.details) if isinstance(row.details, str) else None
        except ValueError:
            continue
        claim = _lifted(value, _CLAIM_KEYS)
        if claim is not None:
            claims.add(legacy_uuid(claim))
    if claims:
        found["claims"] = set(
            (
                await session.scalars(
                    sa.select(ClaimSubmission.id).where(
                        ClaimSubmission.id.in_(claims), ClaimSubmission.organization_id != org
                    )
                )
            ).all()
        )
    return found


async def _train_if_missing(
    sessions: async_sessionmaker[AsyncSession], org: uuid.UUID, clock: Clock
) -> int:
    async with sessions() as session:
        with translate_database_errors():
            exists = await session.scalar(
                sa.select(sa.func.count()).where(PhiAuditDictionary.organization_id == org)
            )
            if exists:
                return 0
            orgs = (
                await session.execute(sa.select(_LEGACY.c.organization_id).distinct())
            ).scalars()
            wanted = [o for o in orgs if legacy_uuid(o) == org]
            raw = (
                await session.scalars(
                    sa.select(sa.cast(_LEGACY.c.details, sa.Text))
                    .where(_LEGACY.c.organization_id.in_(wanted), _LEGACY.c.details.is_not(None))
                    .order_by(_LEGACY.c.created_at.desc())
                    .limit(_SAMPLES)
                )
            ).all()
    samples = []
    for text in raw:
        try:
            canonical = _details(text)[1]
        except (ValueError, TypeError):
            continue
        if canonical is not None:
            samples.append(canonical.encode("utf-8"))
    samples.reverse()
    return 0 if await store_dictionary(sessions, org, samples, clock=clock) is None else 1
