"""Keep archive pointer rows and blobs in step, in both directions, for every archive kind.

The loop is shared; what is kind-specific is a small :class:`ArchiveKind` object each
capability supplies (its key prefix, how its pointer rows are listed and marked, which
blobs are legitimately waiting for a job still in flight).

Rows without blobs ("lost"): a pointer row is evidence (key, sha256, sizes) and is never
deleted. With ``repair`` the kind marks it, so reads fail fast with ArchiveMissing and
the loss shows in reports; if the blob comes back (restored from a backup), a repair
run finds it and clears the mark ("restored").

Blobs without rows ("orphans"): left by a write whose transaction never committed and
whose rollback hook could not run (a crash, a kill). Repair deletes them, but only when
older than ``grace`` (read from the ``execstore_written_at`` metadata every archive
carries; a blob without it is treated as old), so an in-flight write between its upload
and its commit is never raced. Blobs a kind reports as "pending" (a crashed batch left
them and its re-run will reuse them) are never deleted.

Crash leftovers of the blob store itself (a local write killed half-way leaves a hidden
temporary file) older than ``grace`` are removed too, and reported.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.blob import WRITTEN_AT_METADATA, ArchiveRef, Archives, BlobInfo
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import ArchiveCorrupt, ArchiveMissing, translate_database_errors

__all__ = [
    "DEFAULT_GRACE",
    "ArchiveKind",
    "ArchiveTotals",
    "Pointer",
    "ReconcileReport",
    "pointers_in_id_order",
    "reconcile",
]

DEFAULT_GRACE: Final = dt.timedelta(hours=1)
_CHECK_CONCURRENCY: Final = 16


@dataclass(frozen=True, slots=True)
class Pointer:
    """One archive pointer row, as the reconciler sees it."""

    ref: ArchiveRef
    marked_lost: bool
    """The row already carries the kind's "blob missing" mark."""
    row: Any = None
    """The kind's own handle for the row (what :meth:`ArchiveKind.mark` needs)."""


@dataclass(frozen=True, slots=True)
class ArchiveTotals:
    """How much one archive kind holds, from its pointer rows (no blob I/O)."""

    archives: int
    """Pointer rows (one per blob)."""
    records: int
    """Records inside those blobs (log lines, audit records, result documents)."""
    stored_bytes: int
    """Compressed bytes in blob storage."""
    raw_bytes: int
    """Bytes before compression."""


class ArchiveKind(Protocol):
    """What the reconciler needs to know about one capability's archives."""

    name: str
    """Shown in reports: ``results``, ``logs``, ``audit``."""
    prefix: str
    """Every blob of this kind has a key under it (``results/``)."""

    def organization_prefix(self, organization_id: uuid.UUID) -> str:
        """The key prefix of one organization's blobs of this kind."""
        ...

    async def pointers(
        self,
        session: AsyncSession,
        *,
        after: Any,
        limit: int,
        organization_id: uuid.UUID | None,
    ) -> tuple[list[Pointer], Any]:
        """Up to ``limit`` pointer rows after the cursor ``after`` (None: from the start),
        and the cursor to continue from."""
        ...

    async def referenced(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` that a pointer row points at."""
        ...

    async def pending(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` (none referenced) that an unfinished batch will still claim."""
        ...

    async def mark(self, session: AsyncSession, pointer: Pointer, *, lost: bool) -> None:
        """Set (``lost``) or clear the row's "blob missing" mark."""
        ...

    async def totals(
        self, session: AsyncSession, *, organization_id: uuid.UUID | None = None
    ) -> ArchiveTotals:
        """What this kind's pointer rows say it holds (for the storage report)."""
        ...


async def pointers_in_id_order(
    session: AsyncSession,
    model: Any,
    to_pointer: Callable[[Any], Pointer],
    *,
    after: Any,
    limit: int,
    organization_id: uuid.UUID | None,
) -> tuple[list[Pointer], Any]:
    """A page of a pointer table with ``id`` and ``organization_id`` columns, in id order.

    The :meth:`ArchiveKind.pointers` of any kind whose pointer rows are keyed that way.
    """
    stmt = sa.select(model).order_by(model.id).limit(limit)
    if after is not None:
        stmt = stmt.where(model.id > after)
    if organization_id is not None:
        stmt = stmt.where(model.organization_id == organization_id)
    with translate_database_errors():
        rows = (await session.scalars(stmt)).all()
    return [to_pointer(row) for row in rows], (rows[-1].id if rows else after)


async def pointer_totals(
    session: AsyncSession, model: Any, *, organization_id: uuid.UUID | None = None
) -> ArchiveTotals:
    """:meth:`ArchiveKind.totals` of a pointer table with ``organization_id``,
    ``record_count``, ``stored_size`` and ``raw_size`` columns."""
    stmt = sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(model.record_count), 0),
        sa.func.coalesce(sa.func.sum(model.stored_size), 0),
        sa.func.coalesce(sa.func.sum(model.raw_size), 0),
    )
    if organization_id is not None:
        stmt = stmt.where(model.organization_id == organization_id)
    with translate_database_errors():
        count, records, stored, raw = (await session.execute(stmt)).one()
    return ArchiveTotals(int(count), int(records), int(stored), int(raw))


@dataclass(slots=True)
class ReconcileReport:
    """What the reconciler found and (with ``repair``) did, for one archive kind."""

    kind: str
    repair: bool
    rows_checked: int = 0
    blobs_checked: int = 0
    lost: list[str] = field(default_factory=list)
    """Pointer rows whose blob is missing (newly found this run)."""
    still_lost: list[str] = field(default_factory=list)
    """Rows already marked lost whose blob is still missing."""
    restored: list[str] = field(default_factory=list)
    """Rows marked lost whose blob is back."""
    corrupt: list[str] = field(default_factory=list)
    """Blobs that do not match their row's sha256 (only with ``verify``; never deleted)."""
    orphans: list[str] = field(default_factory=list)
    """Blobs without a row, older than the grace period."""
    young: list[str] = field(default_factory=list)
    """Blobs without a row but younger than the grace period (left alone)."""
    pending: list[str] = field(default_factory=list)
    """Blobs an unfinished batch will claim on its re-run (left alone)."""
    leftovers: list[str] = field(default_factory=list)
    """Crash leftovers of the blob store (partial writes) older than the grace period."""
    marked: int = 0
    deleted: int = 0

    @property
    def clean(self) -> bool:
        """True when nothing is lost, corrupt or orphaned."""
        return not (self.lost or self.still_lost or self.corrupt or self.orphans)

    @property
    def problems(self) -> bool:
        """True when something needs an operator (what a repair cannot fix counts too)."""
        return bool(
            self.lost
            or self.still_lost
            or self.corrupt
            or (self.orphans and not self.repair)
            or (self.leftovers and not self.repair)
        )


async def reconcile(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    kinds: Sequence[ArchiveKind],
    *,
    repair: bool = False,
    grace: dt.timedelta = DEFAULT_GRACE,
    verify: bool = False,
    organization_id: uuid.UUID | None = None,
    batch_size: int = 500,
    clock: Clock = SYSTEM_CLOCK,
) -> list[ReconcileReport]:
    """One report per kind, after checking every pointer row and every blob of the kind.

    With ``repair`` lost rows are marked (and restored ones unmarked), orphan blobs and
    crash leftovers older than ``grace`` are deleted. ``verify`` also downloads each blob
    and checks its sha256 (slow; corrupt blobs are reported, never deleted).
    ``organization_id`` limits both directions to one organization.

    "Older than ``grace``" is by ``clock`` (the store's: ``store.clock``), compared with
    the time each archive recorded when it was written (by the same clock). Crash
    leftovers have no such record: the blob store ages them by its own modification
    times, so with a clock far from the wall a leftover's age is off by the difference.
    """
    cutoff = clock.now() - grace
    reports = []
    for kind in kinds:
        report = ReconcileReport(kind=kind.name, repair=repair)
        await _check_rows(sessions, archives, kind, report, verify, organization_id, batch_size)
        prefix = (
            kind.prefix if organization_id is None else kind.organization_prefix(organization_id)
        )
        await _check_blobs(sessions, archives, kind, report, prefix, cutoff, batch_size)
        report.leftovers = await archives.store.sweep_partial(
            prefix, older_than=cutoff, dry_run=not repair
        )
        reports.append(report)
    return reports


async def _check_rows(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    kind: ArchiveKind,
    report: ReconcileReport,
    verify: bool,
    organization_id: uuid.UUID | None,
    batch_size: int,
) -> None:
    gate = asyncio.Semaphore(_CHECK_CONCURRENCY)

    async def state_of(pointer: Pointer) -> str:
        async with gate:
            try:
                if verify:
                    await archives.verify(pointer.ref)
                elif not await archives.store.exists(pointer.ref.key):
                    return "missing"
            except ArchiveMissing:
                return "missing"
            except ArchiveCorrupt:
                return "corrupt"
            return "ok"

    after: Any = None
    while True:
        async with sessions() as session, session.begin():
            pointers, after = await kind.pointers(
                session, after=after, limit=batch_size, organization_id=organization_id
            )
            if not pointers:
                return
            states = await asyncio.gather(*(state_of(p) for p in pointers))
            for pointer, state in zip(pointers, states, strict=True):
                report.rows_checked += 1
                key = pointer.ref.key
                if state == "missing":
                    (report.still_lost if pointer.marked_lost else report.lost).append(key)
                    if report.repair and not pointer.marked_lost:
                        await kind.mark(session, pointer, lost=True)
                        report.marked += 1
                elif state == "corrupt":
                    report.corrupt.append(key)
                elif pointer.marked_lost:
                    report.restored.append(key)
                    if report.repair:
                        await kind.mark(session, pointer, lost=False)


async def _check_blobs(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    kind: ArchiveKind,
    report: ReconcileReport,
    prefix: str,
    cutoff: dt.datetime,
    batch_size: int,
) -> None:
    batch: list[BlobInfo] = []
    async for info in archives.store.list(prefix):
        batch.append(info)
        if len(batch) >= batch_size:
            await _check_blob_batch(sessions, archives, kind, report, batch, cutoff)
            batch = []
    if batch:
        await _check_blob_batch(sessions, archives, kind, report, batch, cutoff)


async def _check_blob_batch(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    kind: ArchiveKind,
    report: ReconcileReport,
    batch: list[BlobInfo],
    cutoff: dt.datetime,
) -> None:
    report.blobs_checked += len(batch)
    async with sessions() as session:
        referenced = await kind.referenced(session, [info.key for info in batch])
        unreferenced = [info for info in batch if info.key not in referenced]
        waiting = await kind.pending(session, [info.key for info in unreferenced])
    for info in unreferenced:
        if info.key in waiting:
            report.pending.append(info.key)
            continue
        written = _parse_time(info.metadata.get(WRITTEN_AT_METADATA))
        # No recorded time: a put still running (a local blob linked before its sidecar
        # is written) or not one execstore wrote; either way its age is unknown.
        if written is None or written > cutoff:
            report.young.append(info.key)
            continue
        report.orphans.append(info.key)
        if report.repair:
            # Look once more right before deleting: a write may have committed meanwhile.
            async with sessions() as session:
                if await kind.referenced(session, [info.key]):
                    continue
            if await archives.delete(info.key):
                report.deleted += 1


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
