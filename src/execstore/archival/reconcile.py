"""Keep archive pointer rows and blobs in step, in both directions, for every archive kind.

The loop is shared, and so is the kind for a pointer table
(:class:`execstore.archival.PointerTable`: its rows listed, marked and totalled the same
way for every capability); what is capability-specific is small (which blobs are
legitimately waiting for a job still in flight; how results derive their keys).

Rows without blobs ("lost"): a pointer row is evidence (key, sha256, sizes) and is never
deleted. With ``repair`` the kind marks it, so reads fail fast with ArchiveMissing and
the loss shows in reports; if the blob comes back (restored from a backup), a repair
run finds it and clears the mark ("restored").

Blobs without rows ("orphans"): left by a write whose transaction never committed and
whose rollback hook could not run (a crash, a kill). Repair deletes them, but only when
older than ``grace`` (read from the ``execstore_written_at`` metadata every archive
carries), so an in-flight write between its upload and its commit is never raced. A blob
without that record (a local put still writing it, or not one execstore wrote) has no
age to tell: it is reported young and left alone. Blobs a kind reports as "pending" (a
crashed batch left them and its re-run will reuse them) are never deleted.

Crash leftovers of the blob store itself (a local write killed half-way leaves a hidden
temporary file) older than ``grace`` are removed too, and reported.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.blob import WRITTEN_AT_METADATA, ArchiveRef, Archives, BlobInfo
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import ArchiveCorrupt, ArchiveMissing
from execstore.operations.batch import BatchReport, SetAside

__all__ = [
    "DEFAULT_GRACE",
    "FOUND",
    "ArchiveKind",
    "ArchiveTotals",
    "Pointer",
    "reconcile",
]

DEFAULT_GRACE: Final = dt.timedelta(hours=1)
_CHECK_CONCURRENCY: Final = 16
FOUND: Final = {
    "lost": "lost: the blob is missing (reads fail fast once marked; restore it or accept)",
    "still_lost": "lost: the blob is still missing (marked)",
    "restored": "",
    "corrupt": "corrupt: the blob does not match its sha256 (never deleted)",
    "orphans": "orphan: no pointer row names it (--repair deletes it)",
    "young": "",
    "pending": "",
    "leftovers": "crash leftover of the blob store (--repair removes it)",
}
"""What a reconcile report lists in ``details`` (keys and paths), and the reason those
needing an operator are set aside with: lost and corrupt always, orphans and leftovers
unless repaired. Restored, young (within the grace) and pending blobs need nobody."""


@dataclass(frozen=True, slots=True)
class Pointer:
    """One archive pointer row, as the reconciler sees it."""

    ref: ArchiveRef
    marked_lost: bool
    """The row is already marked ``lost``."""
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

    @property
    def name(self) -> str:
        """Shown in reports: ``results``, ``logs``, ``audit``."""
        ...

    @property
    def prefix(self) -> str:
        """Every blob of this kind has a key under it (``results/``)."""
        ...

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
        """Set (``lost``) or clear the row's ``lost`` mark."""
        ...

    async def totals(
        self, session: AsyncSession, *, organization_id: uuid.UUID | None = None
    ) -> ArchiveTotals:
        """What this kind's pointer rows say it holds (for the storage report)."""
        ...


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
) -> list[BatchReport]:
    """One report per kind (``reconcile <kind>``), after checking every pointer row and
    every blob of the kind.

    Counts rows and blobs checked, how many of each :data:`FOUND` state, the rows
    ``marked`` lost and the blobs ``deleted``; ``details`` lists the keys of each state
    and what needs an operator is set aside.

    With ``repair`` lost rows are marked (and restored ones unmarked), orphan blobs and
    crash leftovers older than ``grace`` are deleted. ``verify`` also downloads each blob
    and checks its sha256 (slow; corrupt blobs are reported, never deleted).
    ``organization_id`` limits both directions to one organization.

    "Older than ``grace``" is by ``clock`` (the store's: ``store.clock``), compared with
    the time each archive recorded when it was written (by the same clock). Crash
    leftovers have no such record: the blob store stamps them with its own modification
    times, by the wall, so they are aged by the wall too (:data:`SYSTEM_CLOCK`); with
    ``clock`` far ahead of the wall a running put's temporary file looked years old and
    was swept from under it.
    """
    cutoff = clock.now() - grace
    # Modification times are the wall's, whatever ``clock`` says (see above).
    leftover_cutoff = SYSTEM_CLOCK.now() - grace
    reports = []
    for kind in kinds:
        report = BatchReport.start(
            f"reconcile {kind.name}", "rows_checked", "blobs_checked", *FOUND, "marked", "deleted"
        )
        report.details.update({name: [] for name in FOUND}, kind=kind.name, repair=repair)
        await _check_rows(sessions, archives, kind, report, verify, organization_id, batch_size)
        prefix = (
            kind.prefix if organization_id is None else kind.organization_prefix(organization_id)
        )
        await _check_blobs(sessions, archives, kind, report, prefix, cutoff, batch_size)
        report.details["leftovers"] = await archives.store.sweep_partial(
            prefix, older_than=leftover_cutoff, dry_run=not repair
        )
        for state, reason in FOUND.items():
            found = report.details[state]
            report.counts[state] = len(found)
            # Lost stays a problem after marking (an operator must restore or accept it);
            # orphans and leftovers are only a problem when nobody removed them.
            if reason and not (repair and state in ("orphans", "leftovers")):
                report.set_aside += [SetAside(key, reason) for key in found]
        reports.append(report)
    return reports


async def _check_rows(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    kind: ArchiveKind,
    report: BatchReport,
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

    found = report.details
    repair = found["repair"]
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
                report.add(rows_checked=1)
                key = pointer.ref.key
                if state == "missing":
                    found["still_lost" if pointer.marked_lost else "lost"].append(key)
                    if repair and not pointer.marked_lost:
                        await kind.mark(session, pointer, lost=True)
                        report.add(marked=1)
                elif state == "corrupt":
                    found["corrupt"].append(key)
                elif pointer.marked_lost:
                    found["restored"].append(key)
                    if repair:
                        await kind.mark(session, pointer, lost=False)


async def _check_blobs(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    kind: ArchiveKind,
    report: BatchReport,
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
    report: BatchReport,
    batch: list[BlobInfo],
    cutoff: dt.datetime,
) -> None:
    report.add(blobs_checked=len(batch))
    found = report.details
    async with sessions() as session:
        referenced = await kind.referenced(session, [info.key for info in batch])
        unreferenced = [info for info in batch if info.key not in referenced]
        waiting = await kind.pending(session, [info.key for info in unreferenced])
    for info in unreferenced:
        if info.key in waiting:
            found["pending"].append(info.key)
            continue
        written = _parse_time(info.metadata.get(WRITTEN_AT_METADATA))
        # No recorded time: a put still running (a local blob linked before its sidecar
        # is written) or not one execstore wrote; either way its age is unknown.
        if written is None or written > cutoff:
            found["young"].append(info.key)
            continue
        found["orphans"].append(info.key)
        if found["repair"]:
            # Look once more right before deleting: a write may have committed meanwhile.
            async with sessions() as session:
                if await kind.referenced(session, [info.key]):
                    continue
            if await archives.delete(info.key):
                report.add(deleted=1)


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
