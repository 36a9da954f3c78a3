"""Refill the legacy JSON table from the normalized contexts (``contract_rag_rules`` going down).

Runs inside the migration on its synchronous connection. Every context becomes one
legacy row (canonical text ids, the camelCase JSON of :mod:`execstore.rag.format`),
marked verified: the two sides hold the same context, as after a complete backfill.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from execstore.rag.format import context_to_legacy
from execstore.rag.normalized import context_of, every_context_sql
from execstore.schema.models import ExecutionRagContext
from execstore.schema.rag import execution_rag_rules_legacy, rag_backfill_verified

execution_rag_context: sa.Table = ExecutionRagContext.__table__  # type: ignore[assignment]

__all__ = ["refill_legacy"]

_BATCH = 500


def refill_legacy(bind: sa.Connection) -> int:
    """Write a legacy row for every normalized context; how many were written."""
    sql = every_context_sql(bind.dialect.name)
    job_type = execution_rag_context.c.job_id.type
    after: uuid.UUID = uuid.UUID(int=0)
    written = 0
    while True:
        rows = bind.execute(
            sql.bindparams(
                sa.bindparam("after", after, type_=job_type),
                sa.bindparam("size", _BATCH),
            )
        ).all()
        if not rows:
            return written
        after = rows[-1].context_job
        legacy_rows = [
            {
                "id": str(uuid.uuid4()),
                "job_id": str(row.context_job),
                "organization_id": str(row.organization_id),
                **context_to_legacy(context_of(row)),
            }
            for row in rows
        ]
        bind.execute(sa.insert(execution_rag_rules_legacy), legacy_rows)
        bind.execute(
            sa.insert(rag_backfill_verified), [{"legacy_id": r["id"]} for r in legacy_rows]
        )
        written += len(legacy_rows)
