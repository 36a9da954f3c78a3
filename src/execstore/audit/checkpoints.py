"""Chain heads anchored outside the database: write-once checkpoint blobs.

Someone who can rewrite the whole audit table can also recompute every hash in it; what
they cannot rewrite is a blob written earlier to a write-once container (an Azure
container with a locked time-based retention policy: see the README). A checkpoint is
such a blob, named by what it proves::

    audit/<org>/<yyyy>/<mm>/checkpoints/<seq, 16 digits>-<sha256 hex>.json.gz

so ``execstore audit verify`` finds every organization's anchors with a listing alone.
Checkpoints are written at least daily (the first record written after the interval
claims one; ``execstore audit checkpoint`` writes all that are due) and at the end of
every archived segment. Retention leaves a *tombstone* blob when it deletes a segment
(``.../retention/<first>-<last>.json.gz``): the chain then resumes from the checkpoint
at the segment's end, and the tombstone says the gap was retention, not tampering.
``phi_audit_checkpoints`` indexes the checkpoints in the database (verify compares the
two: a row whose blob is gone is reported).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.audit.format import format_time, genesis
from execstore.blob import Archives, archive_key
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import translate_database_errors
from execstore.operations.batch import BatchReport, Progress
from execstore.schema.audit import PhiAuditChainHead, PhiAuditCheckpoint

__all__ = [
    "AUDIT_PREFIX",
    "Evidence",
    "checkpoint_key",
    "checkpoint_organizations",
    "organization_prefix",
    "read_evidence",
    "tombstone_key",
    "write_checkpoint",
]

AUDIT_PREFIX: Final = "audit/"
CHECKPOINTS: Final = "checkpoints"
RETENTION: Final = "retention"
SEGMENTS: Final = "segments"
_UUID: Final = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_KEY: Final = re.compile(
    rf"^audit/(?P<org>{_UUID})/\d{{4}}/\d{{2}}/(?P<kind>checkpoints|retention|segments)/"
    r"(?P<a>\d{16})-(?P<b>[0-9a-f]{64}|\d{16})\.n?json\.(?:gz|zst)$"
)
_HEADS: sa.Table = PhiAuditChainHead.__table__  # type: ignore[assignment]
_CHECKPOINTS: sa.Table = PhiAuditCheckpoint.__table__  # type: ignore[assignment]


def organization_prefix(organization_id: uuid.UUID) -> str:
    """The key prefix of every audit blob of ``organization_id``."""
    return f"{AUDIT_PREFIX}{organization_id}/"


def checkpoint_key(
    archives: Archives, org: uuid.UUID, seq: int, digest: bytes, created_at: dt.datetime
) -> str:
    """The write-once key of the checkpoint ``(seq, digest)`` of ``org``."""
    name = f"{seq:016d}-{digest.hex()}"
    return archive_key("audit", org, created_at, CHECKPOINTS, name, archives.codec, document=True)


def tombstone_key(
    archives: Archives, org: uuid.UUID, first: int, last: int, created_at: dt.datetime
) -> str:
    """The write-once key of the tombstone of retention-deleted records ``first..last``."""
    name = f"{first:016d}-{last:016d}"
    return archive_key("audit", org, created_at, RETENTION, name, archives.codec, document=True)


def parse_key(key: str) -> tuple[uuid.UUID, str, int, str] | None:
    """(organization, kind, first number, second part) of an audit blob key, else None."""
    found = _KEY.match(key)
    if found is None:
        return None
    return uuid.UUID(found["org"]), found["kind"], int(found["a"]), found["b"]


async def write_checkpoint(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    org: uuid.UUID,
    seq: int,
    digest: bytes,
    created_at: dt.datetime,
    *,
    clock: Clock,
) -> str:
    """Write (or find, identical) the checkpoint blob of ``(seq, digest)`` and index it.

    ``created_at`` is the head's (its last record's) time; ``clock`` stamps the index row.
    """
    key = checkpoint_key(archives, org, seq, digest, created_at)
    document = {
        "format": "execstore-audit-checkpoint/1",
        "organization_id": str(org),
        "seq": seq,
        "hash": digest.hex(),
        "created_at": format_time(created_at),
        "genesis": genesis(org).hex(),
    }
    await archives.store_document(key, document)
    async with sessions() as session:
        dialect = session.get_bind().dialect.name
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_CHECKPOINTS)
        with translate_database_errors():
            async with session.begin():
                await session.execute(
                    insert.values(
                        organization_id=org,
                        seq=seq,
                        hash=digest,
                        created_at=created_at,
                        written_at=clock.now(),
                        blob_key=key,
                    ).on_conflict_do_nothing()
                )
                await session.execute(
                    sa.update(_HEADS)
                    .where(_HEADS.c.organization_id == org, _HEADS.c.checkpoint_seq < seq)
                    .values(checkpoint_seq=seq)
                )
    return key


async def checkpoint_organizations(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    *,
    organization_id: uuid.UUID | None = None,
    on_progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> BatchReport:
    """Checkpoint every organization's chain head that moved since its last checkpoint.

    Counts ``written`` and ``up_to_date`` chains; ``details["keys"]``: the blobs written.
    """
    report = BatchReport.start("audit checkpoint", "written", "up_to_date")
    keys: list[str] = report.details.setdefault("keys", [])
    async with sessions() as session:
        stmt = sa.select(
            _HEADS.c.organization_id,
            _HEADS.c.seq,
            _HEADS.c.hash,
            _HEADS.c.last_at,
            _HEADS.c.checkpoint_seq,
        ).order_by(_HEADS.c.organization_id)
        if organization_id is not None:
            stmt = stmt.where(_HEADS.c.organization_id == organization_id)
        with translate_database_errors():
            heads = (await session.execute(stmt)).all()
    for done, (org, seq, digest, last_at, checkpointed) in enumerate(heads, start=1):
        if seq == 0 or seq <= checkpointed:
            report.add(up_to_date=1)
        else:
            when = last_at.replace(tzinfo=dt.UTC) if last_at.tzinfo is None else last_at
            keys.append(
                await write_checkpoint(
                    sessions, archives, org, seq, bytes(digest), when, clock=clock
                )
            )
            report.add(written=1)
        if on_progress is not None:
            on_progress(done, len(heads))
    return report


@dataclass(slots=True)
class Evidence:
    """What blob storage holds about one organization's chain."""

    checkpoints: dict[int, tuple[bytes, str]] = field(default_factory=dict)
    """seq -> (chain hash, blob key)."""
    tombstones: list[tuple[int, int, str]] = field(default_factory=list)
    """(first seq, last seq, blob key) of records deleted at the end of retention."""
    segments: dict[str, int] = field(default_factory=dict)
    """Segment blob keys -> their first seq."""


async def read_evidence(archives: Archives, org: uuid.UUID) -> Evidence:
    """Every checkpoint, tombstone and segment blob of ``org``, from one listing."""
    evidence = Evidence()
    async for info in archives.store.list(organization_prefix(org)):
        parsed = parse_key(info.key)
        if parsed is None or parsed[0] != org:
            continue
        _, kind, first, second = parsed
        if kind == CHECKPOINTS:
            evidence.checkpoints[first] = (bytes.fromhex(second), info.key)
        elif kind == RETENTION:
            evidence.tombstones.append((first, int(second), info.key))
        else:
            evidence.segments[info.key] = first
    evidence.tombstones.sort()
    return evidence


async def organizations_with_evidence(archives: Archives) -> set[uuid.UUID]:
    """Every organization that has audit blobs (so a chain dropped from the database shows)."""
    found: set[uuid.UUID] = set()
    async for info in archives.store.list(AUDIT_PREFIX):
        parsed = parse_key(info.key)
        if parsed is not None:
            found.add(parsed[0])
    return found
