"""The RAG migrations' data checks going down, on the migration's synchronous connection.

- :func:`refill_legacy` (``contract_rag_rules`` going down): every normalized context
  becomes one legacy row (canonical text ids, the camelCase JSON of
  :mod:`execstore.rag.format`), marked verified, as after a complete backfill;
- :func:`contexts_not_in_legacy` (``normalize_rag_rules`` going down): the contexts the
  legacy table does not hold equally (written or changed in the ``normalized`` mode),
  which that downgrade would lose.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.rag.format import context_to_legacy
from execstore.rag.normalized import context_of, every_context_sql
from execstore.schema.models import ExecutionRagContext
from execstore.schema.rag import execution_rag_rules_legacy, rag_backfill_verified

execution_rag_context: sa.Table = ExecutionRagContext.__table__  # type: ignore[assignment]

__all__ = ["contexts_not_in_legacy", "refill_legacy"]

_BATCH = 500


def refill_legacy(bind: sa.Connection, *, clock: Clock = SYSTEM_CLOCK) -> int:
    """Write a legacy row for every normalized context; how many were written.

    The rows are marked verified at the clock's time (a migration runs on the wall clock).
    """
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
                **context_to_legacy(context_of(row, bind.dialect.name)),
            }
            for row in rows
        ]
        bind.execute(sa.insert(execution_rag_rules_legacy), legacy_rows)
        bind.execute(
            sa.insert(rag_backfill_verified),
            [{"legacy_id": r["id"], "verified_at": clock.now()} for r in legacy_rows],
        )
        written += len(legacy_rows)


def contexts_not_in_legacy(bind: sa.Connection) -> list[uuid.UUID]:
    """Job ids whose normalized context no legacy row holds equally."""
    from execstore.ids import legacy_uuid
    from execstore.rag.format import context_from_legacy

    table = execution_rag_rules_legacy
    by_job = {
        legacy_uuid(job): row_id
        for row_id, job in bind.execute(sa.select(table.c.id, table.c.job_id)).all()
    }
    sql = every_context_sql(bind.dialect.name)
    job_type = execution_rag_context.c.job_id.type
    after: uuid.UUID = uuid.UUID(int=0)
    missing: list[uuid.UUID] = []
    while True:
        rows = bind.execute(
            sql.bindparams(
                sa.bindparam("after", after, type_=job_type), sa.bindparam("size", _BATCH)
            )
        ).all()
        if not rows:
            return missing
        after = rows[-1].context_job
        wanted = {by_job[r.context_job] for r in rows if r.context_job in by_job}
        held = {
            legacy_uuid(row.job_id): row
            for row in bind.execute(sa.select(table).where(table.c.id.in_(wanted))).all()
        }
        for row in rows:
            legacy_row = held.get(row.context_job)
            try:
                same = legacy_row is not None and context_from_legacy(
                    legacy_row._mapping
                ) == context_of(row, bind.dialect.name)
            except ValueError:
                same = False
            if not same:
                missing.append(row.context_job)
