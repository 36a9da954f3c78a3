"""Appending to an organization's chain: one short transaction that holds its chain head.

Every writer (``uow.audit.record``, the legacy backfill) appends the same way:

1. lock the organization's row in ``phi_audit_chain_heads`` (``SELECT ... FOR UPDATE`` on
   PostgreSQL; on SQLite the first statement is a write, which takes the database's one
   write lock), so writers of one organization queue up while other organizations'
   writers proceed;
2. resolve catalog ids (only misses reach the database; new entries are inserted here,
   under the lock, so no two writers create the same one);
3. give each record the next ``seq``, render its canonical line, extend the chain;
4. insert the rows and move the head; commit.

Details are compressed before the lock is taken, so the lock is held for a few round
trips, not for compression. A ``seq`` is never reused and never skipped: the head and
the rows commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.audit.catalog import AuditState, Kind
from execstore.audit.codec import DetailsCodec
from execstore.audit.format import (
    canonical_details,
    chain_step,
    format_time,
    genesis,
    link_of,
    render_line,
)
from execstore.audit.types import PhiAccess
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import InvalidAuditRecord, NotFound
from execstore.schema.audit import PhiAuditChainHead, PhiAuditLog
from execstore.schema.reference import ClaimSubmission, Job

__all__ = ["Appended", "Head", "Pending", "append", "lock_head", "prepare"]

_HEADS: sa.Table = PhiAuditChainHead.__table__  # type: ignore[assignment]
_LOG: sa.Table = PhiAuditLog.__table__  # type: ignore[assignment]
_ONE_STATEMENT = 1000  # SQLite: rows per INSERT statement
_ARRAY_COLUMNS: Final = tuple(c.name for c in _LOG.columns if c.name != "organization_id")


def _pg_append() -> sa.TextClause:
    """INSERT the rows given as one array per column, and move the chain head, in one go."""
    dialect: sa.Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays = ", ".join(
        f"CAST(:{name} AS {_LOG.c[name].type.compile(dialect=dialect)}[])"
        for name in _ARRAY_COLUMNS
    )
    return sa.text(
        f"WITH inserted AS (INSERT INTO {_LOG.name} (organization_id, "
        f"{', '.join(_ARRAY_COLUMNS)}) SELECT CAST(:organization_id AS UUID), * "
        f"FROM unnest({arrays}) RETURNING seq) "
        f"UPDATE {_HEADS.name} SET seq = :head_seq, hash = :head_hash, last_at = :last_at, "
        "checkpoint_claimed_at = coalesce(:claimed_at, checkpoint_claimed_at) "
        "WHERE organization_id = :organization_id"
    )


_PG_APPEND: Final = _pg_append()


@dataclass(slots=True)
class Pending:
    """One record ready to append: canonical values, details already encoded."""

    id: uuid.UUID
    action: str
    resource_type: str
    resource_id: str | None = None
    actor: str | None = None
    patient: str | None = None
    claim_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None
    purpose: str | None = None
    source_ip: str | None = None
    ip_text: str | None = None
    user_agent: str | None = None
    details_text: str | None = None
    details_stored: bytes | None = None
    encoding: int = 0
    created_at: dt.datetime | None = None
    """Set only for records that already have a time (legacy rows); else the time of writing."""

    def catalog_values(self) -> list[tuple[int, str]]:
        """The (kind, value) pairs this record needs catalog ids for."""
        pairs: list[tuple[int, str]] = [
            (Kind.ACTION, self.action),
            (Kind.RESOURCE_TYPE, self.resource_type),
        ]
        for kind, value in (
            (Kind.PURPOSE, self.purpose),
            (Kind.ACTOR, self.actor),
            (Kind.USER_AGENT, self.user_agent),
            (Kind.IP_TEXT, self.ip_text),
        ):
            if value is not None:
                pairs.append((kind, value))
        return pairs

    def line(self, seq: int, created_at: dt.datetime, organization_id: uuid.UUID) -> bytes:
        """The canonical line of this record at ``seq``."""
        return render_line(
            seq=seq,
            created_at=format_time(created_at),
            id=str(self.id),
            organization_id=str(organization_id),
            actor_id=self.actor,
            action=self.action,
            resource_type=self.resource_type,
            resource_id=self.resource_id,
            patient_ref=self.patient,
            claim_id=None if self.claim_id is None else str(self.claim_id),
            job_id=None if self.job_id is None else str(self.job_id),
            purpose=self.purpose,
            source_ip=self.source_ip if self.source_ip is not None else self.ip_text,
            user_agent=self.user_agent,
            details=self.details_text,
        )


def clean_text(value: str | None, name: str) -> str | None:
    """``value`` without NUL; InvalidAuditRecord if it cannot be stored as UTF-8."""
    if value is None:
        return None
    cleaned = value.replace("\x00", "") if "\x00" in value else value
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidAuditRecord(f"{name} is not valid Unicode text: {exc.reason}") from exc
    return cleaned


def source_address(text: str | None) -> tuple[str | None, str | None]:
    """(inet text, None) for an IP address that round-trips exactly, else (None, raw text).

    IPv4-mapped IPv6 addresses are kept as text: their printed form differs between
    Python versions (3.13 prints ``::ffff:1.2.3.4``), and the hashed text must not.
    """
    if text is None:
        return None, None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None, text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return None, text
    return (text, None) if str(address) == text else (None, text)


def prepare(access: PhiAccess, codec: DetailsCodec) -> Pending:
    """``access`` as a record to append; InvalidAuditRecord if it cannot be stored."""
    try:
        details = canonical_details(access.details)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise InvalidAuditRecord(f"details: {exc}") from exc
    stored, encoding = codec.encode(details)
    inet, raw_ip = source_address(None if access.source_ip is None else str(access.source_ip))
    return Pending(
        id=uuid.uuid4(),
        action=clean_text(access.action, "action") or "",
        resource_type=clean_text(access.resource_type, "resource_type") or "",
        resource_id=clean_text(access.resource_id, "resource_id"),
        actor=None if access.actor_id is None else str(access.actor_id),
        patient=clean_text(access.patient_ref, "patient_ref"),
        claim_id=access.claim_id,
        job_id=access.job_id,
        purpose=clean_text(access.purpose, "purpose"),
        source_ip=inet,
        ip_text=raw_ip,
        user_agent=clean_text(access.user_agent, "user_agent"),
        details_text=details,
        details_stored=stored,
        encoding=encoding,
    )


@dataclass(frozen=True, slots=True)
class Head:
    """An organization's chain head as locked by a writer."""

    seq: int
    hash: bytes
    last_at: dt.datetime | None
    checkpoint_claimed_at: dt.datetime | None
    foreign_job: uuid.UUID | None = None
    foreign_claim: uuid.UUID | None = None


@dataclass(slots=True)
class Appended:
    """What one append wrote."""

    organization_id: uuid.UUID
    seqs: list[int] = field(default_factory=list)
    times: list[dt.datetime] = field(default_factory=list)
    head_seq: int = 0
    head_hash: bytes = b""
    head_at: dt.datetime | None = None
    catalog_ids: dict[tuple[int, str], int] = field(default_factory=dict)
    checkpoint_due: bool = False


async def lock_head(session: AsyncSession, org: uuid.UUID, pending: Sequence[Pending] = ()) -> Head:
    """Lock (creating it if needed) ``org``'s chain head in the session's transaction.

    The same round trip looks for a job or claim the records name that belongs to
    another organization (see :func:`_foreign_checks`).
    """
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_HEADS)
    create = insert.values(organization_id=org, seq=0, hash=genesis(org)).on_conflict_do_nothing()
    select = sa.select(
        _HEADS.c.seq,
        _HEADS.c.hash,
        _HEADS.c.last_at,
        _HEADS.c.checkpoint_claimed_at,
        *_foreign_checks(org, pending),
    ).where(_HEADS.c.organization_id == org)
    if dialect == "postgresql":
        row = (await session.execute(select.with_for_update(of=_HEADS))).first()
        if row is None:
            await session.execute(create)
            row = (await session.execute(select.with_for_update(of=_HEADS))).one()
    else:
        # A write first: it takes SQLite's write lock before anything is read, so the
        # head cannot change between reading it and writing it (no stale snapshot).
        await session.execute(create)
        row = (await session.execute(select)).one()
    return Head(
        int(row[0]),
        bytes(row[1]),
        _aware(row[2]),
        _aware(row[3]),
        row[4] if len(row) > 4 else None,
        row[5] if len(row) > 5 else None,
    )


def _foreign_checks(org: uuid.UUID, pending: Sequence[Pending]) -> list[Any]:
    """Scalar subqueries naming a job / claim of another organization (None if there is none).

    Audit records outlive what they name (a job deleted years ago) and may name a job
    the caller's own unit has not committed yet, so there is no foreign key: what is
    refused is naming a row that exists and belongs to another organization. Jobs and
    claims never change organization, so checking under the chain-head lock, in the
    writer's transaction, is as good as checking in the insert itself.
    """
    jobs = {p.job_id for p in pending if p.job_id is not None}
    claims = {p.claim_id for p in pending if p.claim_id is not None}
    checks: list[Any] = []
    for model, ids in ((Job, jobs), (ClaimSubmission, claims)):
        checks.append(
            sa.select(model.id)
            .where(model.id.in_(ids), model.organization_id != org)
            .limit(1)
            .scalar_subquery()
            if ids
            else sa.null()
        )
    return checks


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


async def append(
    session: AsyncSession,
    org: uuid.UUID,
    pending: Sequence[Pending],
    state: AuditState,
    *,
    checkpoint_every: dt.timedelta | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Appended:
    """Append ``pending`` to ``org``'s chain inside the session's (open) transaction.

    A record without its own ``created_at`` is stamped with the clock's time (never
    earlier than the chain's last record). Raises NotFound, with nothing written, if a
    record names another organization's job or claim. With ``checkpoint_every``, claims
    the organization's next checkpoint when the last claim is older than that by the
    clock (``Appended.checkpoint_due``): the caller writes it after the commit.
    """
    head = await lock_head(session, org, pending)
    if head.foreign_job is not None:
        raise NotFound(f"job {head.foreign_job} not found")
    if head.foreign_claim is not None:
        raise NotFound(f"claim submission {head.foreign_claim} not found")
    ids = await state.catalog.ids(
        session, org, (pair for p in pending for pair in p.catalog_values())
    )
    now = clock.now()
    live_at = now if head.last_at is None or now >= head.last_at else head.last_at
    last_at = head.last_at
    digest = head.hash
    seq = head.seq
    out = Appended(organization_id=org, catalog_ids=ids)
    rows: list[dict[str, Any]] = []
    for record in pending:
        seq += 1
        created = record.created_at.astimezone(dt.UTC) if record.created_at else live_at
        digest = chain_step(digest, record.line(seq, created, org))
        last_at = created if last_at is None or created > last_at else last_at
        rows.append(
            {
                "organization_id": org,
                "seq": seq,
                "created_at": created,
                "link": link_of(digest),
                "id": record.id,
                "job_id": record.job_id,
                "claim_id": record.claim_id,
                "actor": None if record.actor is None else ids[(Kind.ACTOR, record.actor)],
                "patient_ref": record.patient,
                "action": ids[(Kind.ACTION, record.action)],
                "resource_type": ids[(Kind.RESOURCE_TYPE, record.resource_type)],
                "purpose": None if record.purpose is None else ids[(Kind.PURPOSE, record.purpose)],
                "user_agent": None
                if record.user_agent is None
                else ids[(Kind.USER_AGENT, record.user_agent)],
                "ip_text": None if record.ip_text is None else ids[(Kind.IP_TEXT, record.ip_text)],
                "dictionary": record.encoding,
                "source_ip": record.source_ip,
                "resource_id": record.resource_id,
                "details": record.details_stored,
            }
        )
        out.seqs.append(seq)
        out.times.append(created)
    values: dict[str, Any] = {"seq": seq, "hash": digest, "last_at": last_at}
    if checkpoint_every is not None and (
        head.checkpoint_claimed_at is None or head.checkpoint_claimed_at <= now - checkpoint_every
    ):
        values["checkpoint_claimed_at"] = now
        out.checkpoint_due = True
    if session.get_bind().dialect.name == "postgresql" and rows:
        # One round trip, one statement text whatever the batch size (prepared once per
        # connection): the rows go in as arrays and the head moves with them.
        params: dict[str, Any] = {name: [row[name] for row in rows] for name in _ARRAY_COLUMNS}
        params.update(
            organization_id=org,
            head_seq=seq,
            head_hash=digest,
            last_at=last_at,
            claimed_at=values.get("checkpoint_claimed_at"),
        )
        await session.execute(_PG_APPEND, params)
    else:
        move = sa.update(_HEADS).where(_HEADS.c.organization_id == org).values(**values)
        for start in range(0, len(rows), _ONE_STATEMENT):
            await session.execute(sa.insert(_LOG), rows[start : start + _ONE_STATEMENT])
        await session.execute(move)
    out.head_seq, out.head_hash, out.head_at = seq, digest, last_at
    return out
