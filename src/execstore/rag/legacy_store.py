"""The legacy side: ``execution_rag_rules_legacy``, one JSON row per job (text ids).

Used by the ``legacy`` and dual-write modes and by the backfill. Legacy ids are text in
any spelling; a job's row is found by the uuid its ``job_id`` maps to
(:func:`execstore.ids.legacy_uuid`): on PostgreSQL through an expression index, on
SQLite by trying the spellings of a uuid first and scanning after. Rule look-ups
(``rule_usage``/``top_rules``) scan the organization's rows in the window and read the
JSON in Python: fine for a transition, which is what this table is for.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.errors import InvalidRagContext, explain
from execstore.ids import legacy_uuid, legacy_uuid_sql
from execstore.rag.format import context_from_legacy, context_to_legacy
from execstore.rag.types import RagContext, RuleUse
from execstore.schema.rag import execution_rag_rules_legacy as table
from execstore.schema.rag import legacy_job_uuid_sql

__all__ = ["LegacyRow", "find", "insert", "rows_in_window", "write_uses"]


class LegacyRow:
    """A legacy row: its text id and the context it holds."""

    __slots__ = ("context", "id", "organization_id")

    def __init__(self, id: str, organization_id: uuid.UUID, context: RagContext) -> None:
        self.id = id
        self.organization_id = organization_id
        self.context = context


def _spellings(job_id: uuid.UUID) -> list[str]:
    text = str(job_id)
    return [
        text,
        text.upper(),
        f"{{{text}}}",
        f"{{{text.upper()}}}",
        job_id.hex,
        job_id.hex.upper(),
    ]


async def _find_raw(session: AsyncSession, job_id: uuid.UUID, *, lock: bool) -> sa.Row[Any] | None:
    dialect = session.get_bind().dialect.name
    conditions = (
        [sa.text(f"{legacy_job_uuid_sql()} = :job_uuid").bindparams(job_uuid=job_id)]
        if dialect == "postgresql"
        else [
            table.c.job_id.in_(_spellings(job_id)),
            legacy_uuid_sql(table.c.job_id, dialect) == str(job_id),
        ]
    )
    for condition in conditions:
        stmt = sa.select(table).where(condition)
        if lock:
            stmt = stmt.with_for_update()
        row = (await session.execute(stmt)).first()
        if row is not None:
            return row
    return None


async def find(
    session: AsyncSession, organization_id: uuid.UUID, job_id: uuid.UUID, *, lock: bool = False
) -> LegacyRow | None:
    """The job's legacy row (locked for update with ``lock``), None if it has none.

    A row naming another organization is not this organization's: None.
    Raises InvalidRagContext (also a ValueError) if the row's JSON is not a context (the
    backfill sets such rows aside; a read of one names the row and what is wrong).
    """
    row = await _find_raw(session, job_id, lock=lock)
    if row is None or legacy_uuid(row.organization_id) != organization_id:
        return None
    try:
        context = context_from_legacy(row._mapping)
    except (ValidationError, ValueError, TypeError) as exc:
        raise InvalidRagContext(
            f"the legacy RAG row {row.id} of job {job_id} is not a RAG context: {explain(exc)}"
        ) from exc
    return LegacyRow(row.id, organization_id, context)


async def insert(
    session: AsyncSession, organization_id: uuid.UUID, job_id: uuid.UUID, context: RagContext
) -> str:
    """Write ``context`` as a legacy row with canonical text ids; its id."""
    row_id = str(uuid.uuid4())
    await session.execute(
        sa.insert(table).values(
            id=row_id,
            job_id=str(job_id),
            organization_id=str(organization_id),
            **context_to_legacy(context),
        )
    )
    return row_id


async def write_uses(session: AsyncSession, row_id: str, context: RagContext) -> None:
    """Rewrite the legacy row's rules (with their usage) and ``total_rules_used``."""
    values = context_to_legacy(context)
    await session.execute(
        sa.update(table)
        .where(table.c.id == row_id)
        .values(rules=values["rules"], total_rules_used=values["total_rules_used"])
    )


def _names_rule(dialect: str, rule_id: str) -> sa.ColumnElement[bool]:
    # A cheap pre-filter on the JSON text (camelCase or snake_case key); the rows it
    # keeps are parsed and checked exactly in Python.
    if dialect == "postgresql":
        return sa.or_(
            table.c.rules.op("@>")(
                sa.func.jsonb_build_array(sa.func.jsonb_build_object("ruleId", rule_id))
            ),
            table.c.rules.op("@>")(
                sa.func.jsonb_build_array(sa.func.jsonb_build_object("rule_id", rule_id))
            ),
        )
    each = sa.func.json_each(table.c.rules).table_valued("value")
    return sa.exists(
        sa.select(sa.literal(1))
        .select_from(each)
        .where(
            sa.or_(
                sa.func.json_extract(each.c.value, "$.ruleId") == rule_id,
                sa.func.json_extract(each.c.value, "$.rule_id") == rule_id,
            )
        )
    )


async def rows_in_window(
    session: AsyncSession,
    organization_id: uuid.UUID,
    since: dt.datetime,
    until: dt.datetime,
    *,
    rule_id: str | None = None,
) -> list[tuple[uuid.UUID, RagContext]]:
    """Every (job id, context) of the organization retrieved in ``[since, until)``, oldest first.

    With ``rule_id``, only the rows whose rules name it. Rows that do not hold a valid
    context are skipped (the backfill reports them).
    """
    dialect = session.get_bind().dialect.name
    naive = [as_naive_utc(since), as_naive_utc(until)]
    stmt = (
        sa.select(table)
        .where(
            legacy_uuid_sql(table.c.organization_id, dialect)
            == (organization_id if dialect == "postgresql" else str(organization_id)),
            table.c.retrieved_at >= naive[0],
            table.c.retrieved_at < naive[1],
        )
        .order_by(table.c.retrieved_at, table.c.id)
    )
    if rule_id is not None:
        stmt = stmt.where(_names_rule(dialect, rule_id))
    out = []
    for row in (await session.execute(stmt)).all():
        try:
            out.append((legacy_uuid(row.job_id), context_from_legacy(row._mapping)))
        except ValueError:
            continue
    out.sort(key=lambda pair: (pair[1].retrieved_at, pair[0]))
    return out


def as_naive_utc(value: dt.datetime) -> dt.datetime:
    """``value`` as the legacy column holds it: UTC without a time zone."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None)


def uses_in_window(
    pairs: list[tuple[uuid.UUID, RagContext]],
    rule_id: str,
    *,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None,
) -> list[RuleUse]:
    """The :class:`RuleUse` page of ``rule_id`` among ``pairs`` (already in order)."""
    out: list[RuleUse] = []
    for job_id, context in pairs:
        if after is not None and (context.retrieved_at, job_id) <= after:
            continue
        for position, rule in enumerate(context.rules):
            if rule.rule_id == rule_id:
                out.append(
                    RuleUse(
                        job_id=job_id,
                        retrieved_at=context.retrieved_at,
                        position=position,
                        retrieval_score=rule.retrieval_score,
                        was_used=rule.was_used,
                        used_at_step_index=rule.used_at_step_index,
                        used_at=rule.used_at,
                        usage_reason=rule.usage_reason,
                    )
                )
                break
        if len(out) >= limit:
            break
    return out
