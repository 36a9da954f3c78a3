"""Archival and retention of audit records: segments of a chain, verified, then removed.

``archive_audit`` moves each organization's records older than the hot window (a
contiguous prefix of its chain, at most ``segment_records`` per segment and never two
UTC months in one) into compressed NDJSON blobs::

    audit/<org>/<yyyy>/<mm>/segments/<first seq>-<last seq>.ndjson.gz

Each line is the record's canonical form plus its link (``gunzip | jq`` reads it). For
every segment: the chain is recomputed from where the previous segment ended and every
link checked (a broken chain is set aside, never archived over); the blob is written
create-only and read back and re-hashed; a checkpoint of the segment's last record is
written; then the pointer row is recorded and the archive cursor moved, and only then,
in a later transaction, are the hot rows deleted (the append-only trigger lets a DELETE
through only for rows a pointer row covers). A crash at any step is finished by the
next run; a re-run with the same range finds the identical blob.

``expire_audit_segments`` (run by :func:`execstore.operations.apply_retention` for
``audit``) deletes archived segments whose newest record is older than the retention,
and never one younger than six years (45 CFR 164.316(b)(2)) whatever it is told: a
shorter retention raises InvalidRetention. Before a segment goes, its
chain is re-verified and a tombstone blob records what was deleted, so the chain stays
verifiable from the checkpoint at the segment's end. A run that stops after deleting a
segment's blob leaves its pointer row to the next run, which finds the tombstone and
deletes the row (until then ``audit verify`` reports the segment unreadable); one that
stops after writing the tombstone is finished by the next run, under whatever retention
(the first tombstone stands).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.archival import PointerTable, pointer_values
from execstore.audit.catalog import AuditState
from execstore.audit.checkpoints import (
    AUDIT_PREFIX,
    SEGMENTS,
    parse_key,
    tombstone_key,
    write_checkpoint,
)
from execstore.audit.format import format_time, genesis, split_stored_line, stored_line
from execstore.audit.reader import Renderer, Segment, fetch_hot, segments
from execstore.blob import ArchiveRef, Archives, archive_key
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.config import AUDIT_RETENTION_FLOOR_DAYS
from execstore.errors import (
    ArchiveConflict,
    ArchiveCorrupt,
    ArchiveMissing,
    InvalidArgument,
    InvalidRetention,
    translate_database_errors,
)
from execstore.operations.batch import BatchReport, Progress, describe_failure
from execstore.schema.audit import (
    PhiAuditArchive,
    PhiAuditChainHead,
    PhiAuditCheckpoint,
    PhiAuditLog,
)

__all__ = [
    "AuditArchives",
    "archive_audit",
    "check_retention",
    "expire_audit_segments",
    "six_years_after",
]

SEGMENT_RECORDS: Final = 50_000
_LOG: sa.Table = PhiAuditLog.__table__  # type: ignore[assignment]
_HEADS: sa.Table = PhiAuditChainHead.__table__  # type: ignore[assignment]


def six_years_after(moment: dt.datetime) -> dt.datetime:
    """``moment`` plus six calendar years (29 February goes to 1 March)."""
    try:
        return moment.replace(year=moment.year + 6)
    except ValueError:
        return moment.replace(year=moment.year + 6, month=3, day=1)


@dataclass(slots=True)
class _Plan:
    first: int
    last: int
    start: dt.datetime
    end: dt.datetime
    lines: list[bytes]
    end_hash: bytes


async def archive_audit(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    *,
    hot_days: float,
    organization_id: uuid.UUID | None = None,
    segment_records: int = SEGMENT_RECORDS,
    dry_run: bool = False,
    on_progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> BatchReport:
    """Archive every organization's records older than ``hot_days`` (see the module docstring).

    Counts organizations, segments, records and their raw and archived bytes;
    ``details["keys"]``: the segments written. An organization that cannot be archived
    is set aside. "Older" is by ``clock`` (the store's: ``store.clock``), which also
    stamps the pointer and checkpoint rows.
    """
    if hot_days < 0:
        raise InvalidArgument("hot_days must not be negative")
    cutoff = clock.now() - dt.timedelta(days=hot_days)
    report = BatchReport.start(
        "archive audit",
        "organizations",
        "segments",
        "records",
        "raw_bytes",
        "archive_bytes",
        dry_run=dry_run,
    )
    keys: list[str] = report.details.setdefault("keys", [])
    async with sessions() as session:
        stmt = sa.select(_HEADS.c.organization_id).order_by(_HEADS.c.organization_id)
        if organization_id is not None:
            stmt = stmt.where(_HEADS.c.organization_id == organization_id)
        with translate_database_errors():
            organizations = list((await session.scalars(stmt)).all())
    for org in organizations:
        report.add(organizations=1)
        try:
            await _finish_deletes(sessions, org, dry_run)
            while True:
                plan = await _plan_segment(sessions, org, cutoff, segment_records)
                if plan is None:
                    break
                raw = sum(len(line) + 1 for line in plan.lines)
                report.add(segments=1, records=len(plan.lines), raw_bytes=raw)
                if dry_run:
                    break
                ref = await _store_segment(sessions, archives, org, plan, clock)
                report.add(archive_bytes=ref.stored_size)
                keys.append(ref.key)
                if on_progress is not None:
                    on_progress(report.counts["records"], None)
        except Exception as exc:  # this organization waits for the next run; others go on
            report.aside(org, describe_failure(exc))
    return report


async def _finish_deletes(
    sessions: async_sessionmaker[AsyncSession], org: uuid.UUID, dry_run: bool
) -> None:
    """Delete hot rows an earlier run archived but did not get to delete."""
    if dry_run:
        return
    async with sessions() as session, session.begin():
        with translate_database_errors():
            archived = await session.scalar(
                sa.select(_HEADS.c.archived_seq).where(_HEADS.c.organization_id == org)
            )
            if archived:
                await session.execute(
                    sa.delete(_LOG).where(_LOG.c.organization_id == org, _LOG.c.seq <= archived)
                )


async def _plan_segment(
    sessions: async_sessionmaker[AsyncSession],
    org: uuid.UUID,
    cutoff: dt.datetime,
    limit: int,
) -> _Plan | None:
    """The next segment of ``org`` to archive, its chain checked; None if nothing is due."""
    async with sessions() as session:
        with translate_database_errors():
            head = (
                await session.execute(
                    sa.select(_HEADS.c.archived_seq, _HEADS.c.archived_hash).where(
                        _HEADS.c.organization_id == org
                    )
                )
            ).one()
            after = int(head[0])
            previous = genesis(org) if after == 0 else bytes(head[1])
            renderer = Renderer(AuditState(), org)  # what is stored, not what is cached
            plan: _Plan | None = None
            while plan is None or len(plan.lines) < limit:
                rows = await fetch_hot(
                    session,
                    org,
                    after=after,
                    limit=min(5000, limit - (len(plan.lines) if plan else 0)),
                )
                if not rows:
                    break
                await renderer.load(session, rows)
                for row in rows:
                    created = row[1] if row[1].tzinfo else row[1].replace(tzinfo=dt.UTC)
                    if created >= cutoff:
                        return plan
                    if plan is not None and (created.year, created.month) != (
                        plan.start.year,
                        plan.start.month,
                    ):
                        return plan
                    seq = int(row[0])
                    if seq != after + 1:
                        raise ArchiveCorrupt(
                            f"audit/{org}",
                            f"records {after + 1}..{seq - 1} are missing: "
                            "run `execstore audit verify`",
                        )
                    line = renderer.line(row)
                    digest = hashlib.sha256(previous + line).digest()
                    if int.from_bytes(digest[:8], "big", signed=True) != row[2]:
                        raise ArchiveCorrupt(
                            f"audit/{org}",
                            f"record {seq} does not match its chain link: "
                            "run `execstore audit verify`",
                        )
                    if plan is None:
                        plan = _Plan(seq, seq, created, created, [], digest)
                    plan.lines.append(stored_line(line, digest))
                    # Times need not follow seqs (a backfill re-run appends legacy rows it
                    # skipped before): the pointer row spans the earliest and the newest,
                    # which query windows and retention read.
                    plan.start = min(plan.start, created)
                    plan.last, plan.end, plan.end_hash = seq, max(plan.end, created), digest
                    previous, after = digest, seq
            return plan


def _segment_key(archives: Archives, org: uuid.UUID, plan: _Plan) -> str:
    name = f"{plan.first:016d}-{plan.last:016d}"
    return archive_key("audit", org, plan.start, SEGMENTS, name, archives.codec)


async def _store_segment(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    org: uuid.UUID,
    plan: _Plan,
    clock: Clock,
) -> ArchiveRef:
    key = _segment_key(archives, org, plan)
    # The codec serializes each record; records parsed from canonical lines serialize
    # back to exactly those lines (checked below by re-hashing what was stored).
    stored = await archives.store_records(key, (json.loads(line) for line in plan.lines))
    ref = stored.ref
    payload = await archives.read_bytes(ref)
    if [line for line in payload.split(b"\n") if line] != plan.lines:
        raise ArchiveCorrupt(key, "the stored segment differs from the verified records")
    await write_checkpoint(sessions, archives, org, plan.last, plan.end_hash, plan.end, clock=clock)
    async with sessions() as session:
        with translate_database_errors():
            async with session.begin():
                locked = await session.execute(
                    sa.select(_HEADS.c.archived_seq)
                    .where(_HEADS.c.organization_id == org)
                    .with_for_update()
                )
                if int(locked.scalar_one()) != plan.first - 1:
                    raise ArchiveCorrupt(key, "another archiver moved this organization's cursor")
                await session.execute(
                    sa.insert(PhiAuditArchive).values(
                        id=uuid.uuid4(),
                        organization_id=org,
                        first_seq=plan.first,
                        last_seq=plan.last,
                        start_date=plan.start,
                        end_date=plan.end,
                        end_hash=plan.end_hash,
                        **pointer_values(ref, archived_at=clock.now()),
                    )
                )
                await session.execute(
                    sa.update(_HEADS)
                    .where(_HEADS.c.organization_id == org)
                    .values(archived_seq=plan.last, archived_hash=plan.end_hash)
                )
    async with sessions() as session:
        with translate_database_errors():
            async with session.begin():
                await session.execute(
                    sa.delete(_LOG).where(
                        _LOG.c.organization_id == org,
                        _LOG.c.seq >= plan.first,
                        _LOG.c.seq <= plan.last,
                    )
                )
    return ref


# -- retention ----------------------------------------------------------------------


def check_retention(retention_days: int) -> None:
    """Raise InvalidRetention unless ``retention_days`` keeps records six years at least."""
    if retention_days < AUDIT_RETENTION_FLOOR_DAYS:
        raise InvalidRetention(
            f"an audit retention of {retention_days} days is shorter than six years: PHI "
            "audit records must be kept at least six years (45 CFR 164.316(b)(2)); the "
            f"minimum is {AUDIT_RETENTION_FLOOR_DAYS} days. Nothing was deleted."
        )


async def expire_audit_segments(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    report: BatchReport,
    *,
    retention_days: int,
    organization_id: uuid.UUID | None = None,
    on_progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Delete archived segments past retention into ``report``; never a record younger
    than six years (InvalidRetention for a shorter ``retention_days``).

    Ages are measured from the clock's now. Adds to the retention counts
    (``organizations``, ``archives``, ``records``, ``bytes``) and lists the tombstones
    written in ``details["tombstones"]``; a segment that cannot go is set aside.
    """
    check_retention(retention_days)
    now = clock.now()
    cutoff = now - dt.timedelta(days=retention_days)
    tombstones: list[str] = report.details.setdefault("tombstones", [])
    async with sessions() as session:
        stmt = (
            sa.select(PhiAuditArchive.organization_id)
            .where(PhiAuditArchive.end_date < cutoff)
            .distinct()
        )
        if organization_id is not None:
            stmt = stmt.where(PhiAuditArchive.organization_id == organization_id)
        with translate_database_errors():
            organizations = sorted((await session.scalars(stmt)).all(), key=str)
    for org in organizations:
        report.add(organizations=1)
        async with sessions() as session:
            with translate_database_errors():
                due = [
                    s
                    for s in await segments(session, org, until=None)
                    if s.end_date < cutoff and six_years_after(s.end_date) <= now
                ]
        for segment in due:
            try:
                if not report.dry_run:
                    tombstones.append(
                        await _delete_segment(
                            sessions, archives, org, segment, retention_days, clock
                        )
                    )
                report.add(
                    archives=1,
                    records=segment.last_seq - segment.first_seq + 1,
                    bytes=segment.ref.stored_size,
                )
            except Exception as exc:  # left in place; the next run tries again
                report.aside(segment.ref.key, describe_failure(exc))
            if on_progress is not None:
                on_progress(report.counts["archives"], None)


async def _delete_segment(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    org: uuid.UUID,
    segment: Segment,
    retention_days: int,
    clock: Clock,
) -> str:
    key = tombstone_key(archives, org, segment.first_seq, segment.last_seq, segment.end_date)
    # Evidence first: the segment must still verify, and its end must be anchored.
    previous = await _hash_before(sessions, archives, org, segment.first_seq)
    try:
        payload = await archives.read_bytes(segment.ref, cached=False)
    except ArchiveMissing:
        # A run that verified the segment, checkpointed its end, wrote its tombstone and
        # deleted its blob stopped before the pointer row: the tombstone says so, finish.
        if not await archives.store.exists(key):
            raise
        await _delete_pointer(sessions, segment.id)
        return key
    digest = previous
    for line in payload.split(b"\n"):
        if line:
            parts = split_stored_line(line)
            if parts is None:
                raise ArchiveCorrupt(segment.ref.key, "a line is not a record")
            digest = hashlib.sha256(digest + parts[0]).digest()
    if digest != segment.end_hash:
        raise ArchiveCorrupt(segment.ref.key, "does not verify: run `execstore audit verify`")
    await write_checkpoint(
        sessions, archives, org, segment.last_seq, digest, segment.end_date, clock=clock
    )
    # A run under another retention may have written this segment's tombstone and stopped
    # before the delete: the delete was decided (the segment verified again above), and
    # that tombstone, with the retention that decided it, stands.
    with contextlib.suppress(ArchiveConflict):
        await archives.store_document(
            key,
            {
                "format": "execstore-audit-retention/1",
                "organization_id": str(org),
                "first_seq": segment.first_seq,
                "last_seq": segment.last_seq,
                "start_date": format_time(segment.start_date),
                "end_date": format_time(segment.end_date),
                "end_hash": digest.hex(),
                "segment_key": segment.ref.key,
                "segment_sha256": segment.ref.sha256.hex(),
                "retention_days": retention_days,
            },
        )
    await archives.delete(segment.ref.key)
    await _delete_pointer(sessions, segment.id)
    return key


async def _delete_pointer(
    sessions: async_sessionmaker[AsyncSession], pointer_id: uuid.UUID
) -> None:
    async with sessions() as session:
        with translate_database_errors():
            async with session.begin():
                await session.execute(
                    sa.delete(PhiAuditArchive).where(PhiAuditArchive.id == pointer_id)
                )


async def _hash_before(
    sessions: async_sessionmaker[AsyncSession], archives: Archives, org: uuid.UUID, seq: int
) -> bytes:
    """The chain hash after record ``seq - 1``: the genesis, or a checkpoint's hash."""
    if seq == 1:
        return genesis(org)
    async with sessions() as session:
        with translate_database_errors():
            found = await session.scalar(
                sa.select(PhiAuditCheckpoint.hash).where(
                    PhiAuditCheckpoint.organization_id == org, PhiAuditCheckpoint.seq == seq - 1
                )
            )
    if found is None:
        raise ArchiveCorrupt(
            f"audit/{org}", f"no checkpoint anchors record {seq - 1}: run `execstore audit verify`"
        )
    return bytes(found)


# -- reconciler -----------------------------------------------------------------------


class AuditArchives(PointerTable):
    """Audit archives: ``phi_audit_archives`` rows and blobs under ``audit/``.

    Checkpoint and tombstone blobs are evidence: the reconciler treats them as
    referenced, so they are never reported or deleted as orphans. Segment blobs past an
    organization's archive cursor are "pending" (a crashed run will record them).
    """

    name = AUDIT_PREFIX.rstrip("/")
    model = PhiAuditArchive

    async def referenced(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """Keys a pointer row names, and every checkpoint and tombstone key."""
        evidence = {k for k in keys if (p := parse_key(k)) is not None and p[1] != SEGMENTS}
        return evidence | await super().referenced(session, [k for k in keys if k not in evidence])

    async def pending(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """Segment blobs beyond their organization's archive cursor."""
        waiting = set()
        for key in keys:
            parsed = parse_key(key)
            if parsed is None or parsed[1] != SEGMENTS:
                continue
            with translate_database_errors():
                archived = await session.scalar(
                    sa.select(_HEADS.c.archived_seq).where(_HEADS.c.organization_id == parsed[0])
                )
            if parsed[2] > int(archived or 0):
                waiting.add(key)
        return waiting
