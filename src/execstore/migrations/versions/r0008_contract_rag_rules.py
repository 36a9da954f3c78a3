"""contract_rag_rules: drop execution_rag_rules_legacy once the RAG backfill has verified every row.

Refuses (BackfillIncomplete, nothing changed) until the RAG backfill recorded its
completion in ``backfill_completions`` (``execstore backfill rag`` writes it when every
legacy row is moved and verified) and the legacy table still holds the rows it held
then. Writers in the ``legacy`` mode remove the record (and the mark of the row they
change), so a row changed after its backfill is moved and verified again first. After it,
the ``legacy`` and dual-write modes are refused (``ExecStore.open``).

Going down re-creates the legacy table and refills it from the normalized contexts,
each row marked verified and the backfill recorded complete, as after a complete
backfill, so the dual-write modes find every context again and upgrading again drops
the table at once. The refill reads the
normalized tables as ``normalize_rag_rules`` made them and writes the legacy JSON the
orchestration service wrote: arrays of camelCase objects (``payerName``, ``ruleId``,
``usedAtTimestamp`` as ISO 8601 in UTC with milliseconds and ``Z``, ...).

Revision ID: contract_rag_rules
Revises: contract_execution_metadata
Create Date: 2026-12-02
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

from execstore.errors import DowngradeRefused
from execstore.migrations.helpers import (
    INT_ARRAY,
    JSONB,
    LEGACY_TIMESTAMP,
    SMALLINT_ARRAY,
    TIMESTAMPTZ,
    UUID,
    create_table,
    dialect,
    legacy_uuid_pg,
    migration_now,
    require_backfill_complete,
)

revision = "contract_rag_rules"
down_revision = "contract_execution_metadata"
branch_labels = None
depends_on = None
contract = True
BACKFILL = "rag"  # the completion record this step requires

DROPPED = ("rag_backfill_verified", "execution_rag_rules_legacy")
# Going down re-creates the legacy table from the normalized rows: it drops nothing.
DOWNGRADE_REFUSED_WITH_ROWS: tuple[str, ...] = ()

LEGACY_JOB_UUID_INDEX = "ix_execution_rag_rules_legacy_job_uuid"
BATCH = 500


def upgrade() -> None:
    require_backfill_complete(
        op.get_bind(),
        BACKFILL,
        legacy_table="execution_rag_rules_legacy",
        how="run `execstore backfill rag` until it reports complete (it lists rows set "
        "aside and why)",
    )
    op.drop_table("rag_backfill_verified")
    op.drop_table("execution_rag_rules_legacy")


def downgrade() -> None:
    legacy = create_table(
        "execution_rag_rules_legacy",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("job_id", sa.Text(), nullable=False, unique=True),
        sa.Column("organization_id", sa.Text(), nullable=False),
        sa.Column("payers", JSONB, nullable=False, server_default="[]"),
        sa.Column("modifiers", JSONB, nullable=False, server_default="[]"),
        sa.Column("rules", JSONB, nullable=False, server_default="[]"),
        sa.Column("rag_retrieval_time_ms", sa.Integer(), nullable=False),
        sa.Column("total_rules_retrieved", sa.Integer(), nullable=False),
        sa.Column("total_rules_used", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("average_retrieval_score", sa.Numeric(5, 4)),
        sa.Column("retrieved_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Index("ix_execution_rag_rules_legacy_organization_id", "organization_id"),
    )
    if dialect() == "postgresql":
        op.execute(
            f"CREATE INDEX {LEGACY_JOB_UUID_INDEX} ON execution_rag_rules_legacy "
            f"(({legacy_uuid_pg('job_id')}))"
        )
    verified = create_table(
        "rag_backfill_verified",
        sa.Column("legacy_id", sa.Text(), primary_key=True),
        sa.Column("verified_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
    )
    written = refill(op.get_bind(), legacy, verified)
    if written:  # an empty legacy table needs no record (and blocks no downgrade further)
        record_refill(written)


def record_refill(written: int) -> None:
    """Record the RAG backfill complete: the refilled rows are verified, as after one."""
    completions = sa.table(
        "backfill_completions",
        sa.column("name"),
        sa.column("completed_at", TIMESTAMPTZ),
        sa.column("verified_at", TIMESTAMPTZ),
        sa.column("details", JSONB),
    )
    now = migration_now()
    op.execute(sa.delete(completions).where(completions.c.name == BACKFILL))
    op.execute(
        sa.insert(completions).values(
            name=BACKFILL,
            completed_at=now,
            verified_at=now,
            details={"legacy_rows": written, "refilled_by": revision},
        )
    )


# -- the refill: normalized contexts -> legacy rows --------------------------------------

_context = sa.table(
    "execution_rag_context",
    sa.column("job_id", UUID),
    sa.column("organization_id", UUID),
    sa.column("retrieved_at", TIMESTAMPTZ),
    sa.column("rag_retrieval_time_ms", sa.Integer()),
    sa.column("total_rules_retrieved", sa.Integer()),
    sa.column("total_rules_used", sa.Integer()),
    sa.column("average_score", sa.SmallInteger()),
    sa.column("payer_entry_ids", INT_ARRAY),
    sa.column("modifier_entry_ids", INT_ARRAY),
    sa.column("rule_entry_ids", INT_ARRAY),
    sa.column("rule_scores", SMALLINT_ARRAY),
)
_uses = sa.table(
    "execution_rag_rule_uses",
    sa.column("job_id", UUID),
    sa.column("position", sa.SmallInteger()),
    sa.column("counted", sa.Boolean()),
    sa.column("step_index", sa.Integer()),
    sa.column("used_at", TIMESTAMPTZ),
    sa.column("usage_reason", sa.String()),
)
_CATALOGS = {
    "payer": ("rag_payer_catalog", ("payer_name", "payer_id", "scenario")),
    "modifier": ("rag_modifier_catalog", ("code", "scenario")),
    "rule": ("rag_rule_catalog", ("rule_id", "rule_type", "body")),
}


def refill(bind: sa.Connection, legacy: sa.Table, verified: sa.Table) -> int:
    """Write a legacy row, marked verified, for every normalized context; how many."""
    after: Any = None
    written = 0
    while True:
        query = sa.select(_context).order_by(_context.c.job_id).limit(BATCH)
        if after is not None:
            query = query.where(_context.c.job_id > after)
        contexts = bind.execute(query).all()
        if not contexts:
            return written
        after = contexts[-1].job_id
        entries = _catalog_entries(bind, contexts)
        uses = _uses_of(bind, [c.job_id for c in contexts])
        rows = [
            {"id": str(uuid.uuid4()), **_legacy_row(c, entries, uses.get(str(c.job_id), []))}
            for c in contexts
        ]
        bind.execute(sa.insert(legacy), rows)
        bind.execute(sa.insert(verified), [{"legacy_id": row["id"]} for row in rows])
        written += len(rows)


def _catalog_entries(
    bind: sa.Connection, contexts: Sequence[Any]
) -> dict[tuple[str, str, int], Any]:
    # (kind, organization, id) -> the entry's fields; a context names its own
    # organization's entries only.
    found: dict[tuple[str, str, int], Any] = {}
    for kind, (table, fields) in _CATALOGS.items():
        wanted = {i for c in contexts for i in getattr(c, f"{kind}_entry_ids")}
        if not wanted:
            continue
        catalog = sa.table(
            table,
            sa.column("id", sa.Integer()),
            sa.column("organization_id", UUID),
            *[sa.column(f, sa.LargeBinary() if f == "body" else sa.String()) for f in fields],
        )
        ids = sorted(wanted)
        for start in range(0, len(ids), BATCH):  # bounded: SQLite limits bound parameters
            chunk = ids[start : start + BATCH]
            for row in bind.execute(sa.select(catalog).where(catalog.c.id.in_(chunk))).mappings():
                found[(kind, str(row["organization_id"]), row["id"])] = [row[f] for f in fields]
    return found


def _uses_of(bind: sa.Connection, jobs: list[Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for use in bind.execute(sa.select(_uses).where(_uses.c.job_id.in_(jobs))).all():
        found.setdefault(str(use.job_id), []).append(use)
    return found


def _entry(entries: dict[tuple[str, str, int], Any], kind: str, context: Any, i: int) -> Any:
    found = entries.get((kind, str(context.organization_id), i))
    if found is None:
        raise DowngradeRefused(
            f"the RAG context of job {context.job_id} names {kind} catalog entry {i}, which "
            "its organization's catalog does not hold; nothing was changed"
        )
    return found


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return _utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rule_text(body: bytes) -> tuple[str, str]:
    # A rule's body: b"z" + raw deflate of [condition, action] as JSON, or b"j" + the JSON.
    kind, data = body[:1], body[1:]
    raw = zlib.decompress(data, -15) if kind == b"z" else data
    condition, action = json.loads(raw.decode("utf-8", "surrogatepass"))
    return condition, action


def _legacy_row(context: Any, entries: dict[tuple[str, str, int], Any], uses: list[Any]) -> Any:
    rules = []
    for i, score in zip(context.rule_entry_ids, context.rule_scores, strict=True):
        rule_id, rule_type, body = _entry(entries, "rule", context, i)
        condition, action = _rule_text(bytes(body))
        rules.append(
            {
                "ruleId": rule_id,
                "ruleType": rule_type,
                "condition": condition,
                "action": action,
                "retrievalScore": None if score is None else score / 10_000,
                "wasUsed": False,
                "usedAtStepIndex": None,
                "usedAtTimestamp": None,
                "usageReason": None,
            }
        )
    for use in uses:
        rules[use.position].update(
            wasUsed=True,
            usedAtStepIndex=use.step_index,
            usedAtTimestamp=_iso(use.used_at),
            usageReason=use.usage_reason,
        )
    payers = [_entry(entries, "payer", context, i) for i in context.payer_entry_ids]
    modifiers = [_entry(entries, "modifier", context, i) for i in context.modifier_entry_ids]
    average = context.average_score
    return {
        "job_id": str(context.job_id),
        "organization_id": str(context.organization_id),
        "payers": [{"payerName": n, "payerId": p, "scenario": s} for n, p, s in payers],
        "modifiers": [{"code": c, "scenario": s} for c, s in modifiers],
        "rules": rules,
        "rag_retrieval_time_ms": context.rag_retrieval_time_ms,
        "total_rules_retrieved": context.total_rules_retrieved,
        # A use "counted" when its mark added one to the total the context row keeps.
        "total_rules_used": context.total_rules_used + sum(1 for u in uses if u.counted),
        "average_retrieval_score": None if average is None else Decimal(average) / 10_000,
        "retrieved_at": _utc(context.retrieved_at).replace(tzinfo=None),
    }
