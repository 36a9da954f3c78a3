"""PHI audit records: compact, hash-chained, append-only; catalogs, checkpoints, archives.

One row per PHI access, keyed ``(organization_id, seq)``: ``seq`` is the record's place
in its organization's hash chain (1, 2, 3, ... without gaps). Columns are ordered
widest-alignment first; repeated text (actions, resource types, purposes, actors,
user agents) lives once per organization in ``phi_audit_catalog``
and rows hold its 4-byte ids; ``details`` is canonical JSON compressed with the
organization's dictionary (``phi_audit_dictionaries``; see ``execstore.audit.codec``).

Append-only: on both backends a trigger refuses UPDATE of a record and DELETE of a
record no archive pointer row covers (the archival path deletes only verified,
archived records); on PostgreSQL TRUNCATE is refused too.

``phi_audit_log_legacy`` is the pre-optimization table until ``execstore backfill
audit`` has moved its rows and ``contract_phi_audit`` drops it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from execstore.schema import legacy
from execstore.schema.base import Base, KeyedArchivePointer, new_metadata, transitional_copy
from execstore.schema.types import SafeText

__all__ = [
    "APPEND_ONLY_TABLE",
    "InetAddress",
    "PhiAuditArchive",
    "PhiAuditCatalogEntry",
    "PhiAuditChainHead",
    "PhiAuditCheckpoint",
    "PhiAuditDictionary",
    "PhiAuditLog",
    "append_only_ddl",
    "drop_append_only_ddl",
    "phi_audit_log_legacy",
]

APPEND_ONLY_TABLE = "phi_audit_log"


class InetAddress(TypeDecorator[str]):
    """An IP address: ``inet`` on PostgreSQL, its text on SQLite; read back as text."""

    impl = sa.String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.INET())
        return dialect.type_descriptor(sa.String(45))

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return str(value)
        return str(ipaddress.ip_address(str(value)))


class PhiAuditLog(Base):
    """One PHI access record, in its organization's chain."""

    __tablename__ = "phi_audit_log"
    __table_args__ = (
        sa.PrimaryKeyConstraint("organization_id", "seq"),
        # No organization in the key: reads filter it on the row (a patient reference of
        # one organization is rare in another), and the index stays 16 bytes smaller.
        sa.Index(
            None,
            "patient_ref",
            "seq",
            postgresql_where=sa.text("patient_ref IS NOT NULL"),
            sqlite_where=sa.text("patient_ref IS NOT NULL"),
        ),
        sa.Index(
            None,
            "actor",
            "seq",
            postgresql_where=sa.text("actor IS NOT NULL"),
            sqlite_where=sa.text("actor IS NOT NULL"),
        ),
        # Records arrive in time order, so a BRIN index answers time ranges for almost
        # nothing (a few pages for millions of rows); SQLite gets a plain index.
        sa.Index(None, "created_at", postgresql_using="brin"),
    )
    seq: Mapped[int] = mapped_column(sa.BigInteger(), autoincrement=False)
    created_at: Mapped[dt.datetime]
    link: Mapped[int] = mapped_column(sa.BigInteger())
    """The first 8 bytes of the chain hash after this record (signed, big-endian)."""
    organization_id: Mapped[uuid.UUID]
    id: Mapped[uuid.UUID]
    job_id: Mapped[uuid.UUID | None]
    claim_id: Mapped[uuid.UUID | None]
    actor: Mapped[int | None] = mapped_column(sa.Integer())
    action: Mapped[int] = mapped_column(sa.Integer())
    resource_type: Mapped[int] = mapped_column(sa.Integer())
    purpose: Mapped[int | None] = mapped_column(sa.Integer())
    user_agent: Mapped[int | None] = mapped_column(sa.Integer())
    ip_text: Mapped[int | None] = mapped_column(sa.Integer())
    """A source address that is not an IP address (legacy free text), as a catalog id."""
    dictionary: Mapped[int] = mapped_column(sa.SmallInteger())
    """How ``details`` is encoded: see :mod:`execstore.audit.codec`."""
    source_ip: Mapped[str | None] = mapped_column(InetAddress())
    resource_id: Mapped[str | None] = mapped_column(SafeText())
    patient_ref: Mapped[str | None] = mapped_column(SafeText())
    """Kept in the row: patient references rarely repeat enough for a catalog to pay."""
    details: Mapped[bytes | None] = mapped_column(sa.LargeBinary())


class PhiAuditCatalogEntry(Base):
    """A string that audit records repeat (an action, a user agent, ...), once per organization."""

    __tablename__ = "phi_audit_catalog"
    __table_args__ = (sa.UniqueConstraint("organization_id", "kind", "digest"),)
    id: Mapped[int] = mapped_column(sa.Integer(), sa.Identity(), primary_key=True)
    digest: Mapped[int] = mapped_column(sa.BigInteger())
    """The first 8 bytes of sha256(value): the unique key (values may be long)."""
    organization_id: Mapped[uuid.UUID]
    kind: Mapped[int] = mapped_column(sa.SmallInteger())
    value: Mapped[str] = mapped_column(SafeText())


class PhiAuditChainHead(Base):
    """Where each organization's chain ends; locked ``FOR UPDATE`` by every audit write."""

    __tablename__ = "phi_audit_chain_heads"
    seq: Mapped[int] = mapped_column(sa.BigInteger())
    checkpoint_seq: Mapped[int] = mapped_column(sa.BigInteger(), default=0, server_default="0")
    archived_seq: Mapped[int] = mapped_column(sa.BigInteger(), default=0, server_default="0")
    """Records ``1..archived_seq`` are archived (hot rows start after it)."""
    last_at: Mapped[dt.datetime | None]
    checkpoint_claimed_at: Mapped[dt.datetime | None]
    organization_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    archived_hash: Mapped[bytes | None] = mapped_column(sa.LargeBinary(32))
    """The chain hash after ``archived_seq`` (where the next archived segment starts)."""


class PhiAuditCheckpoint(Base):
    """A chain head written to blob storage (the blob is the evidence; this row indexes it)."""

    __tablename__ = "phi_audit_checkpoints"
    __table_args__ = (sa.PrimaryKeyConstraint("organization_id", "seq"),)
    seq: Mapped[int] = mapped_column(sa.BigInteger(), autoincrement=False)
    created_at: Mapped[dt.datetime]
    written_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
    organization_id: Mapped[uuid.UUID]
    hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    blob_key: Mapped[str] = mapped_column(sa.String(400))


class PhiAuditDictionary(Base):
    """A compression dictionary for one organization's details (immutable, versioned)."""

    __tablename__ = "phi_audit_dictionaries"
    __table_args__ = (sa.PrimaryKeyConstraint("organization_id", "version"),)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
    organization_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(sa.SmallInteger(), autoincrement=False)
    codec: Mapped[int] = mapped_column(sa.SmallInteger())
    sample_count: Mapped[int] = mapped_column(sa.Integer())
    sha256: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    content: Mapped[bytes] = mapped_column(sa.LargeBinary())


class PhiAuditArchive(KeyedArchivePointer, Base):
    """An archived segment of one organization's chain (NDJSON), records ``first_seq..last_seq``."""

    __tablename__ = "phi_audit_archives"
    __table_args__ = (sa.UniqueConstraint("organization_id", "first_seq"),)
    start_date: Mapped[dt.datetime]
    end_date: Mapped[dt.datetime]
    first_seq: Mapped[int] = mapped_column(sa.BigInteger())
    last_seq: Mapped[int] = mapped_column(sa.BigInteger())
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID]
    end_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))


phi_audit_log_legacy = transitional_copy(
    legacy.phi_audit_log, "phi_audit_log_legacy", new_metadata()
)
"""The legacy rows (text ids, JSON details) until ``execstore backfill audit`` moves them.

Not part of ``Base.metadata``: the head revision (``contract_phi_audit``) drops it, so
the models describe head without it; code checks whether it is still there.
"""


_REFUSE = (
    "phi_audit_log is append-only: {op} refused (records leave only through archival, "
    "after their segment is archived and verified)"
)
_COVERED = (
    "EXISTS (SELECT 1 FROM phi_audit_archives a WHERE a.organization_id = OLD.organization_id"
    " AND OLD.seq BETWEEN a.first_seq AND a.last_seq)"
)


def append_only_ddl(dialect: str) -> list[str]:
    """The statements that make ``phi_audit_log`` append-only on ``dialect``."""
    if dialect == "postgresql":
        return [
            f"""
            CREATE FUNCTION phi_audit_log_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' AND {_COVERED} THEN
                    RETURN OLD;
                END IF;
                RAISE EXCEPTION '{_REFUSE}', TG_OP USING ERRCODE = 'restrict_violation';
            END $$
            """.replace("{op}", "%"),
            "CREATE TRIGGER phi_audit_log_append_only BEFORE UPDATE OR DELETE ON phi_audit_log "
            "FOR EACH ROW EXECUTE FUNCTION phi_audit_log_append_only()",
            "CREATE TRIGGER phi_audit_log_no_truncate BEFORE TRUNCATE ON phi_audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION phi_audit_log_append_only()",
        ]
    return [
        "CREATE TRIGGER phi_audit_log_no_update BEFORE UPDATE ON phi_audit_log "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSE.format(op='UPDATE')}'); END",
        "CREATE TRIGGER phi_audit_log_no_delete BEFORE DELETE ON phi_audit_log "
        f"WHEN NOT {_COVERED} "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSE.format(op='DELETE')}'); END",
    ]


def drop_append_only_ddl(dialect: str) -> list[str]:
    """The statements that undo :func:`append_only_ddl` (before the table is dropped)."""
    if dialect == "postgresql":
        return [
            "DROP TRIGGER IF EXISTS phi_audit_log_no_truncate ON phi_audit_log",
            "DROP TRIGGER IF EXISTS phi_audit_log_append_only ON phi_audit_log",
            "DROP FUNCTION IF EXISTS phi_audit_log_append_only()",
        ]
    return [
        "DROP TRIGGER IF EXISTS phi_audit_log_no_update",
        "DROP TRIGGER IF EXISTS phi_audit_log_no_delete",
    ]
