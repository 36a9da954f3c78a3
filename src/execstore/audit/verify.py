"""``execstore audit verify``: recompute every chain and compare it with the evidence.

For each organization, records are read in ``seq`` order — archived segments (as the
blob store holds them now, never from the cache, verified against their sha256), then hot
rows — and the chain is recomputed from its genesis (or, with ``since``, from the last
checkpoint before that time). The first record that does not fit is named:

- its 8-byte link differs from the recomputed hash: the record was edited, or one was
  inserted or moved here;
- a ``seq`` is missing: records were deleted (a gap is fine only where a retention
  tombstone and a checkpoint at its end say retention removed them);
- a ``seq`` repeats or goes backwards: records were inserted or reordered;
- the recomputed hash at a checkpoint's ``seq`` differs from the checkpoint blob:
  history was rewritten consistently (links recomputed), which only the checkpoints,
  written outside the database, can reveal; the rewrite lies after the previous
  matching checkpoint;
- checkpoints (or the chain head) go further than the records: the newest records
  were deleted.

Each organization is read from one database snapshot (REPEATABLE READ on PostgreSQL;
a SQLite transaction is one; :mod:`execstore.audit.snapshot` says what is read and
how), taken right after its blobs are listed: records committed
(or archived) while it is verified wait for the next run instead of looking inserted
past the chain head (or deleted), and no listed checkpoint is newer than the records.
Checkpoint blobs are found by listing (their names carry seq and hash), so an
organization whose rows were all dropped still shows up. Records written after the
newest checkpoint are covered only by their links until the next checkpoint.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.audit.catalog import AuditState
from execstore.audit.checkpoints import Evidence, organizations_with_evidence, read_evidence
from execstore.audit.format import genesis, seq_of_line, split_stored_line
from execstore.audit.reader import HotRow, Renderer, Segment
from execstore.audit.snapshot import SnapshotReader
from execstore.blob import Archives
from execstore.errors import ArchiveError, translate_database_errors
from execstore.operations.batch import BatchReport, Progress
from execstore.schema.audit import PhiAuditChainHead, PhiAuditCheckpoint

__all__ = ["COUNTS", "OrganizationVerification", "Problem", "verify_audit"]

EDITED: Final = "edited"
MISSING: Final = "missing"
REORDERED: Final = "reordered"
REWRITTEN: Final = "rewritten"
UNREADABLE: Final = "unreadable"
CHECKPOINT_MISSING: Final = "checkpoint_missing"
_PAGE = 2000
"""Hot rows fetched at a time: two pages in memory stay in the CPU's cache, and fewer rows
live long enough to be promoted (and rescanned) by the garbage collector; measured about
7% faster than 5,000."""
_CHUNK = 500
"""Hot rows checked between two looks at the socket (so the next page streams in)."""
COUNTS: Final = ("organizations", "records", "archived_records", "checkpoints_matched")
"""The counts of an ``audit verify`` report (every organization's records added up)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing in one organization's chain that does not fit."""

    organization_id: uuid.UUID
    seq: int | None
    kind: str
    message: str


@dataclass(slots=True)
class OrganizationVerification:
    """What verifying one organization's chain found."""

    organization_id: uuid.UUID
    records: int = 0
    archived_records: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    checkpoints_matched: int = 0
    newest_checkpoint_seq: int | None = None
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return self.problem is None


class _Stop(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Chain:
    """The recomputation of one organization's chain, record by record."""

    def __init__(
        self,
        org: uuid.UUID,
        evidence: Evidence,
        result: OrganizationVerification,
        start: int,
        previous: bytes,
    ) -> None:
        self.org = org
        self.checkpoints = {seq: found[0] for seq, found in evidence.checkpoints.items()}
        self.keys = {seq: found[1] for seq, found in evidence.checkpoints.items()}
        self.tombstones = evidence.tombstones
        self.result = result
        self.expected = start
        self.previous = previous
        self.last_matched = start - 1

    def fail(self, seq: int | None, kind: str, message: str) -> _Stop:
        return _Stop(Problem(self.org, seq, kind, message))

    def jump(self, seq: int) -> None:
        """Account for a gap before ``seq``: retention may have left one, nothing else."""
        low, high = self.expected, seq - 1
        if seq < self.expected:
            raise self.fail(
                seq,
                REORDERED,
                f"record {seq} comes after record {self.expected - 1}: "
                "records were inserted or reordered",
            )
        covered = _covered(self.tombstones, low, high)
        anchor = self.checkpoints.get(high)
        if not covered or anchor is None:
            raise self.fail(
                low,
                MISSING,
                f"records {low}..{high} are missing: deleted"
                + ("" if covered else " (no retention tombstone covers them)"),
            )
        self.previous = anchor
        self.expected = seq

    def checkpoint(self, seq: int, digest: bytes) -> None:
        expected = self.checkpoints[seq]
        if expected != digest:
            raise self.fail(
                self.last_matched + 1,
                REWRITTEN,
                f"the chain at record {seq} differs from checkpoint {self.keys[seq]}: "
                f"records {self.last_matched + 1}..{seq} were rewritten "
                "(their links were recomputed to hide it)",
            )
        self.last_matched = seq
        self.result.checkpoints_matched += 1

    def count(self, seq: int) -> None:
        if self.result.first_seq is None:
            self.result.first_seq = seq
        self.result.last_seq = seq


def _covered(tombstones: list[tuple[int, int, str]], low: int, high: int) -> bool:
    at = low
    for first, last, _ in tombstones:
        if first <= at <= last:
            at = last + 1
        if at > high:
            return True
    return at > high


async def verify_audit(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    *,
    organization_id: uuid.UUID | None = None,
    since: dt.datetime | None = None,
    on_progress: Progress | None = None,
) -> BatchReport:
    """Verify one organization's chain (or every organization's); see the module docstring.

    An organization whose chain does not fit is set aside, with its first problem as the
    reason; ``details["organizations"]`` holds each :class:`OrganizationVerification`,
    ``details["seconds"]`` how long it took.
    """
    started = time.perf_counter()
    report = BatchReport.start("audit verify", *COUNTS)
    results: list[OrganizationVerification] = report.details.setdefault("organizations", [])
    checked = [0]

    def advance(records: int) -> None:
        if on_progress is not None:
            on_progress(checked[0] + records, None)

    async with sessions() as session:
        with translate_database_errors():
            organizations = await _organizations(session, archives, organization_id)
            await session.rollback()
            reader = await SnapshotReader.open(session)
            for org in organizations:
                # Listed before the snapshot begins: a checkpoint is written after its
                # records commit, so the snapshot shows every record a listed one covers.
                evidence = await read_evidence(archives, org)
                async with reader.snapshot():
                    result = await _verify_one(reader, evidence, archives, org, since, advance)
                results.append(result)
                checked[0] += result.records
                report.add(
                    organizations=1,
                    records=result.records,
                    archived_records=result.archived_records,
                    checkpoints_matched=result.checkpoints_matched,
                )
                if result.problem is not None:
                    problem = result.problem
                    at = "" if problem.seq is None else f" at record {problem.seq}"
                    report.aside(org, f"{problem.kind}{at}: {problem.message}")
    report.details["seconds"] = time.perf_counter() - started
    return report


async def _organizations(
    session: AsyncSession, archives: Archives, organization_id: uuid.UUID | None
) -> list[uuid.UUID]:
    if organization_id is not None:
        return [organization_id]
    known = set((await session.scalars(sa.select(PhiAuditChainHead.organization_id))).all())
    known |= set(
        (await session.scalars(sa.select(PhiAuditCheckpoint.organization_id).distinct())).all()
    )
    known |= await organizations_with_evidence(archives)
    return sorted(known, key=str)


async def _verify_one(
    reader: SnapshotReader,
    evidence: Evidence,
    archives: Archives,
    org: uuid.UUID,
    since: dt.datetime | None,
    on_progress: Callable[[int], None],
) -> OrganizationVerification:
    result = OrganizationVerification(org)
    if evidence.checkpoints:
        result.newest_checkpoint_seq = max(evidence.checkpoints)
    setup = await reader.setup(org)
    start, previous = 1, genesis(org)
    for seq, digest, key, created_at in setup.checkpoints:
        blob = evidence.checkpoints.get(seq)
        if blob is None or blob[0] != digest:
            result.problem = Problem(
                org,
                seq,
                CHECKPOINT_MISSING,
                f"checkpoint {key} is indexed but its blob is "
                + ("gone" if blob is None else "for a different hash"),
            )
            return result
        if since is not None and created_at < since:
            start, previous = seq + 1, digest
    chain = _Chain(org, evidence, result, start, previous)
    archived_seq = 0 if setup.head is None else setup.head[2]
    # A fresh state: verification reads what is stored, never what this process cached.
    renderer = Renderer(AuditState(), org)
    renderer.preload(setup.catalog, setup.codec)
    try:
        await _walk_archives(await reader.segments(org, after=start - 1), archives, chain, start)
        await _walk_hot(reader, chain, renderer, max(chain.expected - 1, archived_seq), on_progress)
        _check_end(chain, setup.head, evidence)
    except _Stop as stop:
        result.problem = stop.problem
    return result


async def _walk_archives(
    segments: Sequence[Segment], archives: Archives, chain: _Chain, start: int
) -> None:
    sha256 = hashlib.sha256
    for segment in segments:
        try:
            payload = await archives.read_bytes(segment.ref, cached=False)
        except ArchiveError as exc:
            raise chain.fail(
                segment.first_seq,
                UNREADABLE,
                f"archived records {segment.first_seq}..{segment.last_seq} cannot be read: {exc}",
            ) from exc
        checkpoints = chain.checkpoints
        count = 0
        for stored in payload.split(b"\n"):
            if not stored:
                continue
            parts = split_stored_line(stored)
            seq = seq_of_line(stored)
            if parts is None or seq is None:
                raise chain.fail(
                    segment.first_seq,
                    EDITED,
                    f"archive {segment.ref.key} holds a line that is not a record",
                )
            if seq < start:
                continue
            if seq != chain.expected:
                chain.jump(seq)
            line, link = parts
            digest = sha256(chain.previous + line).digest()
            if digest[:8] != link:
                raise chain.fail(
                    seq,
                    EDITED,
                    f"archived record {seq} does not match its chain link: edited, "
                    f"inserted or moved ({segment.ref.key})",
                )
            if seq in checkpoints:
                chain.checkpoint(seq, digest)
            chain.previous = digest
            chain.expected = seq + 1
            chain.count(seq)
            count += 1
        chain.result.records += count
        chain.result.archived_records += count
        if chain.expected - 1 == segment.last_seq and chain.previous != segment.end_hash:
            raise chain.fail(
                segment.first_seq,
                REWRITTEN,
                f"archived records {segment.first_seq}..{segment.last_seq} do not end in the "
                "hash their pointer row recorded",
            )


async def _walk_hot(
    reader: SnapshotReader,
    chain: _Chain,
    renderer: Renderer,
    after: int,
    on_progress: Callable[[int], None],
) -> None:
    org = chain.org
    ahead: asyncio.Future[list[HotRow]] | None = None
    try:
        rows = await reader.hot(org, after=after, limit=_PAGE)
        while rows:
            if len(rows) == _PAGE:
                # The next page is on its way while this one is checked: the database
                # reads and sends while the chain is hashed here (the connection is not
                # used again until it has arrived).
                ahead = asyncio.ensure_future(reader.hot(org, after=int(rows[-1][0]), limit=_PAGE))
            for start in range(0, len(rows), _CHUNK):
                _check_rows(chain, renderer, rows[start : start + _CHUNK])
                await asyncio.sleep(0)  # lets the next page stream in meanwhile
            chain.result.records += len(rows)
            on_progress(chain.result.records)
            # A short page was the last one: the snapshot holds no more.
            rows, ahead = ([] if ahead is None else await ahead), None
    finally:
        if ahead is not None:  # stopped early: let the fetch finish before the connection goes
            await asyncio.gather(ahead, return_exceptions=True)


def _check_rows(chain: _Chain, renderer: Renderer, rows: Sequence[HotRow]) -> None:
    """Extend the chain over ``rows`` (in seq order); raises _Stop at the first misfit."""
    heads: list[bytes] = []
    details: list[bytes] = []
    failure: Exception | None = None
    try:
        renderer.parts(rows, heads, details)
    except Exception as exc:  # a catalog id or dictionary that is not there, bad details
        failure = exc
    sha256, link_of = hashlib.sha256, int.from_bytes
    checkpoints = chain.checkpoints
    previous, expected = chain.previous, chain.expected
    for row, head, body in zip(rows, heads, details, strict=False):
        seq = row[0]
        if seq != expected:
            chain.previous, chain.expected = previous, expected
            chain.jump(seq)
            previous, expected = chain.previous, chain.expected
        # sha256(previous + line), the line (head + details + "}") never joined.
        hashing = sha256(previous + head)
        hashing.update(body)
        hashing.update(b"}")
        digest = hashing.digest()
        if link_of(digest[:8], "big", signed=True) != row[2]:
            raise chain.fail(
                seq,
                EDITED,
                f"record {seq} ({row[3]}) does not match its chain link: edited, inserted or moved",
            )
        if seq in checkpoints:
            chain.checkpoint(seq, digest)
        previous, expected = digest, seq + 1
    chain.previous, chain.expected = previous, expected
    if heads:
        chain.count(int(rows[0][0]))
        chain.count(int(rows[len(heads) - 1][0]))
    if failure is not None:
        row = rows[len(heads)]
        seq = row[0]
        if seq != chain.expected:
            chain.jump(seq)
        raise chain.fail(
            seq, EDITED, f"record {seq} ({row[3]}) cannot be rendered: {failure!r}"
        ) from failure


def _check_end(chain: _Chain, head: tuple[int, bytes, int] | None, evidence: Evidence) -> None:
    last = chain.expected - 1
    if head is not None and head[0] > last and _covered(chain.tombstones, last + 1, head[0]):
        # Retention deleted the newest records too (an organization quiet for six years):
        # the tombstones and the checkpoint at the head account for them, as for any gap.
        chain.jump(head[0] + 1)
        last = chain.expected - 1
    beyond = [seq for seq in evidence.checkpoints if seq > last]
    if beyond:
        raise chain.fail(
            last + 1,
            MISSING,
            f"checkpoint {chain.keys[max(beyond)]} covers records up to {max(beyond)} but "
            f"the records end at {last}: the newest records were deleted",
        )
    if head is None:
        if last:
            raise chain.fail(last, MISSING, "the organization's chain head row is missing")
        return
    head_seq, head_hash, _ = head
    if head_seq > last:
        raise chain.fail(
            last + 1,
            MISSING,
            f"records {last + 1}..{head_seq} are missing (the chain head is at {head_seq})",
        )
    if head_seq < last:
        raise chain.fail(
            head_seq + 1,
            REORDERED,
            f"records {head_seq + 1}..{last} lie beyond the chain head: inserted",
        )
    if last and head_hash != chain.previous:
        raise chain.fail(last, EDITED, "the chain head's hash does not match the records")
