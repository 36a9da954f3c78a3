"""The head-equals-models comparison really compares (issue 18.5).

Revisions no longer follow the models, so a model changed without a revision (or a
revision without its model) leaves head and models apart; the comparison in
``test_migrations.py`` must then fail. Here each kind of drift is made on purpose, on a
copy of the models or on the database built from them, and must show up as a
difference; the unchanged copy must show none (so the copy itself is faithful).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.migrations.runner import head_revision
from support.migration_db import Templates, models_schema
from support.schema_snapshot import differences, models_copy


def _column_type(md: sa.MetaData) -> None:
    md.tables["jobs"].c.status.type = sa.String(20)


def _nullable(md: sa.MetaData) -> None:
    md.tables["execution_metadata"].c.error_code.nullable = False


def _server_default(md: sa.MetaData) -> None:
    md.tables["rag_counters"].c.value.server_default = sa.DefaultClause("1")


def _index_gone(md: sa.MetaData) -> None:
    table = md.tables["execution_log_partitioned"]
    table.indexes.discard(next(iter(table.indexes)))


def _unique_gone(md: sa.MetaData) -> None:
    table = md.tables["rag_payer_catalog"]
    table.constraints.discard(
        next(c for c in table.constraints if isinstance(c, sa.UniqueConstraint))
    )


def _on_delete(md: sa.MetaData) -> None:
    fk = next(iter(md.tables["execution_screenshots"].foreign_keys))
    fk.ondelete = None
    fk.constraint.ondelete = None


def _identity_gone(md: sa.MetaData) -> None:
    column = md.tables["execution_log_steps"].c.id
    column.identity = None
    column.server_default = None


def _column_order(md: sa.MetaData) -> None:
    table = md.tables["organizations"]
    md.remove(table)
    sa.Table(
        "organizations",
        md,
        *[c._copy() for c in reversed(list(table.columns))],
        *[c._copy() for c in table.constraints if not isinstance(c, sa.PrimaryKeyConstraint)],
    )


def _new_column(md: sa.MetaData) -> None:
    md.tables["execution_progress"].append_column(sa.Column("eta_ms", sa.Integer()))


def _partial_index(md: sa.MetaData) -> None:
    table = md.tables["phi_audit_log"]
    index = next(i for i in table.indexes if i.name == "ix_phi_audit_log_actor_seq")
    table.indexes.discard(index)
    sa.Index("ix_phi_audit_log_actor_seq", table.c.actor, table.c.seq)


METADATA_DRIFTS: dict[str, Callable[[sa.MetaData], None]] = {
    "column type": _column_type,
    "nullability": _nullable,
    "server default": _server_default,
    "index": _index_gone,
    "unique constraint": _unique_gone,
    "foreign key action": _on_delete,
    "identity": _identity_gone,
    "column order": _column_order,
    "column": _new_column,
    "partial index predicate": _partial_index,
}

# Statements run on the database built from the models: what lives beside the tables.
DDL_DRIFTS: dict[str, dict[str, tuple[str, ...]]] = {
    "postgres": {
        "trigger": ("DROP TRIGGER execution_metadata_summary_truncate ON execution_metadata",),
        "trigger function body": (
            "CREATE OR REPLACE FUNCTION execstore_clear_summaries() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
        ),
        "statistics": ("DROP STATISTICS execution_metadata_organization_hash",),
        "expression index": ("DROP INDEX ix_execution_screenshots_legacy_job_uuid",),
        "index options": (
            "ALTER INDEX ix_execution_rag_context_rule_entry_ids SET (fastupdate = on)",
        ),
        "storage options": ("ALTER TABLE execution_progress RESET (autovacuum_vacuum_threshold)",),
    },
    "sqlite": {
        "trigger": ("DROP TRIGGER phi_audit_log_no_update",),
    },
}


async def test_the_unchanged_models_copy_builds_head(templates: Templates) -> None:
    head = dict(templates.snapshots[head_revision()])
    head.pop("partitions")
    async with templates.scratch() as url:
        models = await models_schema(url, models_copy())
    models.pop("partitions")
    assert differences(head, models) == []


# SQLite has no identity: an INTEGER PRIMARY KEY is the rowid with or without one.
POSTGRES_ONLY = {"identity"}


@pytest.mark.parametrize(
    ("backend", "drift"),
    [
        (backend, drift)
        for backend in ("postgres", "sqlite")
        for drift in sorted(METADATA_DRIFTS)
        if backend == "postgres" or drift not in POSTGRES_ONLY
    ],
    indirect=["backend"],
)
async def test_a_model_drifting_from_head_is_found(
    templates: Templates, backend: str, drift: str
) -> None:
    metadata = models_copy()
    METADATA_DRIFTS[drift](metadata)
    await _assert_found(templates, metadata, ())


@pytest.mark.parametrize(
    ("backend", "drift"),
    [(backend, drift) for backend, drifts in DDL_DRIFTS.items() for drift in drifts],
    indirect=["backend"],
)
async def test_ddl_beside_the_models_drifting_from_head_is_found(
    templates: Templates, backend: str, drift: str
) -> None:
    await _assert_found(templates, None, DDL_DRIFTS[backend][drift])


async def _assert_found(templates: Templates, metadata: Any, statements: tuple[str, ...]) -> None:
    head = dict(templates.snapshots[head_revision()])
    head.pop("partitions")
    async with templates.scratch() as url:
        models = await models_schema(url, metadata, statements)
    models.pop("partitions")
    assert differences(head, models) != []
