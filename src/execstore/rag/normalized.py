"""The normalized side: packed context rows and per-organization catalogs.

Every function takes the caller's session and never commits. Reads are one statement
(the context row, its job's organization and the catalog rows it names, aggregated as
JSON) so that ``get`` costs one round trip like the legacy row it replaces.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.errors import NotFound
from execstore.rag.format import (
    digest,
    modifier_fields,
    pack_rule_text,
    payer_fields,
    rule_fields,
    scaled,
    unpack_rule_text,
    unscaled,
)
from execstore.rag.types import RagContext, RagModifier, RagPayer, RagRule, RuleUse, TopRule
from execstore.repository import as_utc
from execstore.schema import models as m
from execstore.schema.base import TZ

__all__ = [
    "context_of",
    "every_context_sql",
    "fetch",
    "insert",
    "job_exists",
    "lock",
    "mark",
    "rule_usage",
    "top_rules",
]

_CATALOGS: dict[str, Any] = {
    "rule": m.RagRuleEntry,
    "payer": m.RagPayerEntry,
    "modifier": m.RagModifierEntry,
}
_FIELDS = {
    "rule": ("rule_id", "rule_type", "body"),
    "payer": ("payer_name", "payer_id", "scenario"),
    "modifier": ("code", "scenario"),
}
_context: sa.Table = m.ExecutionRagContext.__table__  # type: ignore[assignment]
_uses = m.execution_rag_rule_uses


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def _catalog_ids(
    session: AsyncSession, organization_id: uuid.UUID, wanted: dict[str, list[tuple[Any, ...]]]
) -> dict[str, list[int]]:
    """Catalog ids for each kind's field tuples (in order), adding the missing entries."""
    keys = {kind: [digest(f) for f in fields] for kind, fields in wanted.items()}
    found: dict[tuple[str, bytes], int] = {}
    selects = [
        sa.select(sa.literal(kind).label("kind"), model.digest, model.id).where(
            model.organization_id == organization_id, model.digest.in_(set(keys[kind]))
        )
        for kind, model in _CATALOGS.items()
        if keys.get(kind)
    ]
    if selects:
        rows = await session.execute(sa.union_all(*selects))
        found = {(kind, bytes(d)): i for kind, d, i in rows}
    for kind, fields in wanted.items():
        missing = {}
        for d, f in zip(keys[kind], fields, strict=True):
            if (kind, d) not in found:
                missing[d] = f
        if not missing:
            continue
        model = _CATALOGS[kind]
        values = [
            {"organization_id": organization_id, "digest": d, **_stored(kind, f)}
            for d, f in missing.items()
        ]
        insert = (
            pg.insert(model) if _dialect(session) == "postgresql" else sqlite_dialect.insert(model)
        )
        stmt = insert.on_conflict_do_nothing(index_elements=["organization_id", "digest"])
        added = await session.execute(stmt.returning(model.digest, model.id), values)
        for d, i in added:
            found[(kind, bytes(d))] = i
        late = [d for d in missing if (kind, d) not in found]
        if late:  # a concurrent save added them first (committed: we waited for it)
            rows = await session.execute(
                sa.select(model.digest, model.id).where(
                    model.organization_id == organization_id, model.digest.in_(late)
                )
            )
            found.update({(kind, bytes(d)): i for d, i in rows})
    return {kind: [found[(kind, d)] for d in keys[kind]] for kind in wanted}


def _stored(kind: str, fields: tuple[Any, ...]) -> dict[str, Any]:
    if kind == "rule":
        rule_id, rule_type, condition, action = fields
        body = pack_rule_text(condition, action)
        return {"rule_id": rule_id, "rule_type": rule_type, "body": body}
    return dict(zip(_FIELDS[kind], fields, strict=True))


async def insert(
    session: AsyncSession, organization_id: uuid.UUID, job_id: uuid.UUID, context: RagContext
) -> bool:
    """Store ``context`` for the job; False if the job is not this organization's.

    The organization check and the insert are one ``INSERT ... SELECT FROM jobs``.
    """
    ids = await _catalog_ids(
        session,
        organization_id,
        {
            "rule": [rule_fields(r) for r in context.rules],
            "payer": [payer_fields(p) for p in context.payers],
            "modifier": [modifier_fields(x) for x in context.modifiers],
        },
    )
    values = {
        "retrieved_at": context.retrieved_at,
        "job_id": job_id,
        "organization_id": organization_id,
        "rag_retrieval_time_ms": context.rag_retrieval_time_ms,
        "total_rules_retrieved": context.total_rules_retrieved,
        "total_rules_used": context.total_rules_used,
        "average_score": scaled(context.average_retrieval_score),
        "payer_entry_ids": ids["payer"],
        "modifier_entry_ids": ids["modifier"],
        "rule_entry_ids": ids["rule"],
        "rule_scores": [scaled(r.retrieval_score) for r in context.rules],
    }
    columns = list(values)
    select = sa.select(
        *[sa.literal(values[c], type_=_context.c[c].type).label(c) for c in columns]
    ).where(m.Job.id == job_id, m.Job.organization_id == organization_id)
    done = await session.execute(
        sa.insert(_context).from_select(columns, select).returning(_context.c.job_id)
    )
    if done.first() is None:
        return False
    used = [_use_values(job_id, i, r, counted=False) for i, r in enumerate(context.rules)]
    if used := [u for u, r in zip(used, context.rules, strict=True) if r.was_used]:
        await session.execute(sa.insert(_uses), used)
    return True


def _use_values(
    job_id: uuid.UUID, position: int, rule: RagRule, *, counted: bool
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "position": position,
        "counted": counted,
        "step_index": rule.used_at_step_index,
        "used_at": rule.used_at,
        "usage_reason": rule.usage_reason,
    }


async def job_exists(session: AsyncSession, organization_id: uuid.UUID, job_id: uuid.UUID) -> bool:
    """Whether ``job_id`` is a job of this organization."""
    found = await session.scalar(
        sa.select(sa.literal(1)).where(m.Job.id == job_id, m.Job.organization_id == organization_id)
    )
    return found is not None


def _fetch_sql(dialect: str, *, every: bool = False) -> sa.TextualSelect:
    if dialect == "postgresql":
        ids = "e.id = ANY(c.{col})"
        agg, arr = "json_agg", "json_build_array"
    else:
        ids = "e.id IN (SELECT value FROM json_each(c.{col}))"
        agg, arr = "json_group_array", "json_array"

    binary = "encode(e.body, 'base64')" if dialect == "postgresql" else "hex(e.body)"

    def catalog(table: str, col: str, fields: Sequence[str]) -> str:
        picked = ", ".join(binary if f == "body" else f"e.{f}" for f in fields)
        return (
            f"(SELECT {agg}({arr}(e.id, {picked})) FROM {table} e "
            f"WHERE {ids.format(col=col)} AND e.organization_id = c.organization_id)"
        )

    source = (
        "FROM execution_rag_context c WHERE c.job_id > :after ORDER BY c.job_id LIMIT :size"
        if every
        else "FROM jobs j LEFT JOIN execution_rag_context c ON c.job_id = j.id "
        "WHERE j.id = :job_id AND j.organization_id = :organization_id"
    )
    return sa.text(
        "SELECT c.job_id AS context_job, c.organization_id, c.retrieved_at, "
        "c.rag_retrieval_time_ms, "
        "c.total_rules_retrieved, c.total_rules_used, c.average_score, c.payer_entry_ids, "
        "c.modifier_entry_ids, c.rule_entry_ids, c.rule_scores, "
        f"(SELECT {agg}({arr}(u.position, u.step_index, u.used_at, u.usage_reason, u.counted)) "
        "FROM execution_rag_rule_uses u WHERE u.job_id = c.job_id) AS uses, "
        f"{catalog('rag_rule_catalog', 'rule_entry_ids', _FIELDS['rule'])} AS rules, "
        f"{catalog('rag_payer_catalog', 'payer_entry_ids', _FIELDS['payer'])} AS payers, "
        f"{catalog('rag_modifier_catalog', 'modifier_entry_ids', _FIELDS['modifier'])} AS mods "
        + source
    ).columns(
        sa.column("context_job", _context.c.job_id.type),
        sa.column("organization_id", _context.c.job_id.type),
        sa.column("retrieved_at", TZ),
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


async def fetch(
    session: AsyncSession, organization_id: uuid.UUID, job_id: uuid.UUID
) -> RagContext | None:
    """The job's stored context, None if it has none; NotFound if not this organization's job."""
    dialect = _dialect(session)
    row = (
        await session.execute(
            _fetch_sql(dialect).bindparams(
                sa.bindparam("job_id", job_id, type_=_context.c.job_id.type),
                sa.bindparam("organization_id", organization_id, type_=_context.c.job_id.type),
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"jobs {job_id} not found")
    if row.context_job is None:
        return None
    return _context_of(row, dialect)


def every_context_sql(dialect: str) -> sa.TextualSelect:
    """Stored contexts after job ``:after``, ``:size`` at a time, in job id order."""
    return _fetch_sql(dialect, every=True)


def context_of(row: Any, dialect: str) -> RagContext:
    """The context of a row of :func:`every_context_sql` (or of a job's fetch)."""
    return _context_of(row, dialect)


def _rule_text(dialect: str, rule_id: str | None, rule_type: str, body: str) -> dict[str, Any]:
    # The fetch statement hands the binary body over as text: base64 on PostgreSQL, hex
    # on SQLite (which has no base64 function).
    raw = base64.b64decode(body) if dialect == "postgresql" else bytes.fromhex(body)
    condition, action = unpack_rule_text(raw)
    return {"rule_id": rule_id, "rule_type": rule_type, "condition": condition, "action": action}


def _context_of(row: Any, dialect: str) -> RagContext:
    by_id = {
        kind: {entry[0]: entry[1:] for entry in (_json(raw) or [])}
        for kind, raw in (("rule", row.rules), ("payer", row.payers), ("modifier", row.mods))
    }
    rule_ids = _json(row.rule_entry_ids)
    scores = _json(row.rule_scores)
    rules = [
        RagRule.model_construct(
            **_rule_text(dialect, *by_id["rule"][i]),
            retrieval_score=unscaled(s),
            was_used=False,
            used_at_step_index=None,
            used_at=None,
            usage_reason=None,
        )
        for i, s in zip(rule_ids, scores, strict=True)
    ]
    uses = _json(row.uses) or []
    return RagContext.model_construct(
        retrieved_at=as_utc(row.retrieved_at),
        rag_retrieval_time_ms=row.rag_retrieval_time_ms,
        total_rules_retrieved=row.total_rules_retrieved,
        total_rules_used=row.total_rules_used + sum(1 for u in uses if u[4]),
        average_retrieval_score=unscaled(row.average_score),
        payers=[
            RagPayer.model_construct(**dict(zip(_FIELDS["payer"], by_id["payer"][i], strict=True)))
            for i in _json(row.payer_entry_ids)
        ],
        modifiers=[
            RagModifier.model_construct(
                **dict(zip(_FIELDS["modifier"], by_id["modifier"][i], strict=True))
            )
            for i in _json(row.modifier_entry_ids)
        ],
        rules=_with_uses(rules, uses),
    )


def _time(value: Any) -> dt.datetime | None:
    # A timestamp inside JSON: ISO text (PostgreSQL: with its offset; SQLite: naive UTC).
    if value is None:
        return None
    return as_utc(dt.datetime.fromisoformat(str(value)))


def _with_uses(rules: list[RagRule], uses: list[list[Any]]) -> list[RagRule]:
    out = list(rules)
    for position, step, at, reason, _ in uses:
        out[position] = out[position].model_copy(
            update={
                "was_used": True,
                "used_at_step_index": step,
                "used_at": _time(at),
                "usage_reason": reason,
            }
        )
    return out


async def lock(session: AsyncSession, organization_id: uuid.UUID, job_id: uuid.UUID) -> bool:
    """Lock the job's context row for an update (PostgreSQL); whether it exists."""
    found = await session.scalar(
        sa.select(sa.literal(1))
        .select_from(_context)
        .where(_context.c.job_id == job_id, _context.c.organization_id == organization_id)
        .with_for_update()
    )
    return found is not None


async def mark(session: AsyncSession, job_id: uuid.UUID, position: int, rule: RagRule) -> None:
    """Record ``rule`` (with its usage) as used at ``position``: replaces an earlier mark.

    Call with the context row locked (:func:`lock`): one use row per (job, position).
    A first mark is ``counted`` (it adds one to ``total_rules_used``).
    """
    values = _use_values(job_id, position, rule, counted=True)
    where = (_uses.c.job_id == job_id, _uses.c.position == position)
    changed = await session.execute(
        sa.update(_uses)
        .where(*where)
        .values(
            step_index=values["step_index"],
            used_at=values["used_at"],
            usage_reason=values["usage_reason"],
        )
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        await session.execute(sa.insert(_uses).values(values))


async def rule_usage(
    session: AsyncSession,
    organization_id: uuid.UUID,
    rule_id: str,
    since: dt.datetime,
    until: dt.datetime,
    *,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None,
) -> list[RuleUse]:
    """Up to ``limit`` jobs that retrieved ``rule_id`` in ``[since, until)``, oldest first."""
    entry = m.RagRuleEntry
    entries = set(
        (
            await session.scalars(
                sa.select(entry.id).where(
                    entry.organization_id == organization_id, entry.rule_id == rule_id
                )
            )
        ).all()
    )
    if not entries:
        return []
    c = _context.c
    if _dialect(session) == "postgresql":
        names = sa.literal(sorted(entries), type_=pg.ARRAY(sa.Integer()))
        retrieved: sa.ColumnElement[Any] = c.rule_entry_ids.op("&&")(names)
    else:
        each = sa.func.json_each(c.rule_entry_ids).table_valued("value")
        retrieved = sa.exists(
            sa.select(sa.literal(1)).select_from(each).where(each.c.value.in_(entries))
        )
    stmt = (
        sa.select(c.job_id, c.retrieved_at, c.rule_entry_ids, c.rule_scores)
        .where(
            c.organization_id == organization_id,
            c.retrieved_at >= since,
            c.retrieved_at < until,
            retrieved,
        )
        .order_by(c.retrieved_at, c.job_id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(sa.tuple_(c.retrieved_at, c.job_id) > sa.tuple_(*after))
    found = [
        (job_id, retrieved_at, next(i for i, e in enumerate(ids) if e in entries), scores)
        for job_id, retrieved_at, ids, scores in await session.execute(stmt)
    ]
    used = {}
    if found:
        rows = await session.execute(
            sa.select(
                _uses.c.job_id,
                _uses.c.position,
                _uses.c.step_index,
                _uses.c.used_at,
                _uses.c.usage_reason,
            ).where(_uses.c.job_id.in_([f[0] for f in found]))
        )
        used = {(j, p): (step, at, reason) for j, p, step, at, reason in rows}
    out = []
    for job_id, retrieved_at, position, scores in found:
        use = used.get((job_id, position))
        out.append(
            RuleUse(
                job_id=job_id,
                retrieved_at=retrieved_at,
                position=position,
                retrieval_score=unscaled(scores[position]),
                was_used=use is not None,
                used_at_step_index=None if use is None else use[0],
                used_at=None if use is None else use[1],
                usage_reason=None if use is None else use[2],
            )
        )
    return out


_TOP_SQL = {
    "postgresql": """
WITH w AS (
  SELECT job_id, rule_entry_ids FROM execution_rag_context
  WHERE organization_id = :organization_id AND retrieved_at >= :since AND retrieved_at < :until
), r AS (
  SELECT x AS id, count(*) AS n FROM w, unnest(w.rule_entry_ids) AS x GROUP BY x
), u AS (
  SELECT w.rule_entry_ids[u.position + 1] AS id, count(*) AS n
  FROM w JOIN execution_rag_rule_uses u ON u.job_id = w.job_id GROUP BY 1
)
SELECT e.id, e.rule_id, e.rule_type, r.n, coalesce(u.n, 0)
FROM r JOIN rag_rule_catalog e ON e.id = r.id LEFT JOIN u ON u.id = r.id
""",
    "sqlite": """
WITH w AS (
  SELECT job_id, rule_entry_ids FROM execution_rag_context
  WHERE organization_id = :organization_id AND retrieved_at >= :since AND retrieved_at < :until
), r AS (
  SELECT x.value AS id, count(*) AS n FROM w, json_each(w.rule_entry_ids) AS x GROUP BY x.value
), u AS (
  SELECT json_extract(w.rule_entry_ids, '$[' || u.position || ']') AS id, count(*) AS n
  FROM w JOIN execution_rag_rule_uses u ON u.job_id = w.job_id GROUP BY 1
)
SELECT e.id, e.rule_id, e.rule_type, r.n, coalesce(u.n, 0)
FROM r JOIN rag_rule_catalog e ON e.id = r.id LEFT JOIN u ON u.id = r.id
""",
}


async def top_rules(
    session: AsyncSession,
    organization_id: uuid.UUID,
    since: dt.datetime,
    until: dt.datetime,
) -> list[TopRule]:
    """Every rule retrieved in ``[since, until)`` with its retrieved and used counts."""
    stmt = sa.text(_TOP_SQL[_dialect(session)]).bindparams(
        sa.bindparam("organization_id", organization_id, type_=_context.c.job_id.type),
        sa.bindparam("since", since, type_=TZ),
        sa.bindparam("until", until, type_=TZ),
    )
    totals: dict[Any, list[Any]] = {}
    for entry_id, rule_id, rule_type, retrieved, used in await session.execute(stmt):
        key = rule_id if rule_id is not None else ("entry", entry_id)
        seen = totals.setdefault(key, [rule_id, rule_type, 0, 0])
        seen[2] += retrieved
        seen[3] += used
    return [TopRule(rule_id=r, rule_type=t, retrieved=n, used=u) for r, t, n, u in totals.values()]
