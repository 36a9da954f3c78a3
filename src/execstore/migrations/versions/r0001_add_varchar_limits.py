"""add_varchar_limits: bounded text on the plan's five columns, native types on kept tables.

1. Fits existing over-long values (and strips NULs) so the new limits cannot fail on
   data already stored; the number of rows changed is logged per column.
2. Changes the plan's five columns to VARCHAR(n).
3. PostgreSQL only: text ids become native ``uuid`` and ``timestamp(3)`` becomes
   ``timestamptz`` (read as UTC) on the tables the plan keeps (SQLite: ids rewritten to
   canonical uuid text, the same mapping). A text id that is not a
   uuid maps to ``md5(id)::uuid`` — deterministic, so references stay consistent.
   This rewrites those tables under an exclusive lock: they are the small reference
   tables and ``jobs``, not the log, RAG, metadata or audit tables.
4. The log, RAG, metadata and screenshot tables lose their foreign key to ``jobs``
   (their job ids stay text until their backfills move the rows to the new tables).
5. Tenant keys: workflows, clients, claim submissions and credentials get a unique
   ``(organization_id, id)``, and the rows naming them a composite foreign key through
   it, so the database refuses a job on another organization's workflow. A legacy
   database that already holds such cross-organization references is refused with a
   count per reference (fix the rows, then upgrade again).
6. ``healing_attempts`` is keyed ``(job_id, id)`` (distributable with its job).

Revision ID: add_varchar_limits
Revises: legacy_baseline
Create Date: 2026-11-28
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from execstore.errors import MigrationError
from execstore.migrations.helpers import legacy_uuid_pg, legacy_uuid_text, truncate_overlong

revision = "add_varchar_limits"
down_revision = "legacy_baseline"
branch_labels = None
depends_on = None

LIMITS = [
    ("jobs", "error_message", 2000),
    ("schedule_executions", "error_stack", 10000),
    ("healing_attempts", "reasoning", 2000),
    ("healing_suggestions", "error_pattern", 1000),
    ("healing_suggestions", "dismiss_reason", 500),
]

# table -> (uuid columns, timestamp columns)
NATIVE = {
    "organizations": (["id"], ["created_at"]),
    "workflows": (["id", "organization_id"], ["created_at"]),
    "clients": (["id", "organization_id"], ["created_at"]),
    "claim_submissions": (["id", "organization_id", "client_id"], ["created_at"]),
    "credentials": (["id", "organization_id"], ["created_at"]),
    "jobs": (
        ["id", "organization_id", "workflow_id", "client_id", "claim_submission_id"],
        ["created_at", "started_at", "completed_at"],
    ),
    "schedule_executions": (["id", "organization_id", "workflow_id"], ["created_at"]),
    "healing_attempts": (["id", "job_id"], ["created_at"]),
    "healing_suggestions": (["id", "organization_id", "workflow_id"], ["created_at"]),
}

# (table, column, referred table, on delete) among the tables converted above
FOREIGN_KEYS = [
    ("workflows", "organization_id", "organizations", None),
    ("clients", "organization_id", "organizations", None),
    ("claim_submissions", "organization_id", "organizations", None),
    ("claim_submissions", "client_id", "clients", None),
    ("credentials", "organization_id", "organizations", None),
    ("jobs", "organization_id", "organizations", None),
    ("jobs", "workflow_id", "workflows", None),
    ("jobs", "client_id", "clients", None),
    ("jobs", "claim_submission_id", "claim_submissions", None),
    ("schedule_executions", "organization_id", "organizations", None),
    ("schedule_executions", "workflow_id", "workflows", None),
    ("healing_attempts", "job_id", "jobs", "CASCADE"),
    ("healing_suggestions", "organization_id", "organizations", None),
    ("healing_suggestions", "workflow_id", "workflows", None),
]

# Types and keys of existing tables change; no table is created, and going down keeps
# every row (ids back to text, timestamps to the legacy milliseconds).
NEW_TABLES: tuple[str, ...] = ()
DOWNGRADE_REFUSED_WITH_ROWS: tuple[str, ...] = ()

# Legacy tables whose rows move to new tables later; their job FK goes now.
DETACHED_CHILDREN = [
    "execution_metadata",
    "execution_rag_rules",
    "execution_log",
    "execution_screenshots",
]


def _uuid_functions() -> list[str]:
    return [
        "CREATE FUNCTION pg_temp.execstore_uuid(t text) RETURNS uuid "
        f"LANGUAGE sql IMMUTABLE AS $$ SELECT {legacy_uuid_pg('t')} $$",
        "CREATE FUNCTION pg_temp.execstore_uuids(a text[]) RETURNS uuid[] "
        "LANGUAGE sql IMMUTABLE AS $$ "
        "SELECT coalesce(array_agg(pg_temp.execstore_uuid(x) ORDER BY o), '{}'::uuid[]) "
        "FROM unnest(a) WITH ORDINALITY AS u(x, o) $$",
    ]


# Tables whose (organization_id, id) other rows may name, and the rows that do.
TENANT_KEYED = ["workflows", "clients", "claim_submissions", "credentials"]
OWNED = [
    ("claim_submissions", "client_id", "clients"),
    ("jobs", "workflow_id", "workflows"),
    ("jobs", "client_id", "clients"),
    ("jobs", "claim_submission_id", "claim_submissions"),
    ("schedule_executions", "workflow_id", "workflows"),
    ("healing_suggestions", "workflow_id", "workflows"),
]
_OWNED_PAIRS = {(t, c) for t, c, _ in OWNED}


def _fk_name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def _refuse_cross_tenant_references() -> None:
    bind = op.get_bind()
    problems = []
    for table, column, referred in OWNED:
        found = bind.exec_driver_sql(
            f"SELECT count(*) FROM {table} t JOIN {referred} r ON r.id = t.{column} "
            "WHERE r.organization_id <> t.organization_id"
        ).scalar_one()
        if found:
            problems.append(f"{table}.{column}: {found} row(s) name another organization's row")
    if problems:
        raise MigrationError(
            "cannot add tenant keys: " + "; ".join(problems) + " (fix them, then upgrade again)"
        )


def _add_tenant_keys() -> None:
    _refuse_cross_tenant_references()
    for table in TENANT_KEYED:
        with op.batch_alter_table(table) as batch:
            batch.create_unique_constraint(
                f"uq_{table}_organization_id_id", ["organization_id", "id"]
            )
    for table, column, referred in OWNED:
        with op.batch_alter_table(table) as batch:
            if op.get_bind().dialect.name == "sqlite":
                batch.drop_constraint(_fk_name(table, column, referred), type_="foreignkey")
            batch.create_foreign_key(
                _fk_name(table, "organization_id", referred),
                referred,
                ["organization_id", column],
                ["organization_id", "id"],
            )


def _distributable_keys(up: bool) -> None:
    # healing_attempts is keyed (job_id, id) so it can live on its job's shard (Citus).
    columns = ["job_id", "id"] if up else ["id"]
    with op.batch_alter_table("healing_attempts") as batch:
        batch.drop_constraint("pk_healing_attempts", type_="primary")
        batch.create_primary_key("pk_healing_attempts", columns)


def _drop_tenant_keys() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, column, referred in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_fk_name(table, "organization_id", referred), type_="foreignkey")
            if sqlite:
                batch.create_foreign_key(
                    _fk_name(table, column, referred), referred, [column], ["id"]
                )
    for table in TENANT_KEYED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_organization_id_id", type_="unique")


def _canonical_ids_sqlite(table: str, columns: list[str]) -> None:
    # SQLite keeps uuids as text: rewrite each id to its canonical form (lowercase,
    # hyphenated), mapping non-uuids exactly as PostgreSQL's execstore_uuid() does.
    bind = op.get_bind()
    for column in columns:
        values = bind.exec_driver_sql(f"SELECT DISTINCT {column} FROM {table}").scalars()
        for old in [v for v in values if v is not None]:
            new = legacy_uuid_text(old)
            if new != old:
                bind.execute(
                    sa.text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old"),
                    {"new": new, "old": old},
                )
    if table == "jobs":
        rows = bind.exec_driver_sql("SELECT id, credential_ids FROM jobs").all()
        for job_id, raw in rows:
            ids = json.loads(raw) if isinstance(raw, str) else raw or []
            canonical = [legacy_uuid_text(str(v)) for v in ids]
            if canonical != ids:
                bind.execute(
                    sa.text("UPDATE jobs SET credential_ids = :ids WHERE id = :id"),
                    {"ids": json.dumps(canonical), "id": job_id},
                )


def upgrade() -> None:
    bind = op.get_bind()
    for table, column, limit in LIMITS:
        truncate_overlong(table, column, limit)
    for child in DETACHED_CHILDREN:
        with op.batch_alter_table(child) as batch:
            batch.drop_constraint(_fk_name(child, "job_id", "jobs"), type_="foreignkey")
    if bind.dialect.name == "sqlite":
        for table, (uuid_cols, _) in NATIVE.items():
            _canonical_ids_sqlite(table, uuid_cols)
        for table, column, limit in LIMITS:
            with op.batch_alter_table(table) as batch:
                batch.alter_column(column, type_=sa.String(limit), existing_type=sa.Text())
        _add_tenant_keys()
        _distributable_keys(up=True)
        return

    for statement in _uuid_functions():
        op.execute(statement)
    for table, column, referred, _ in FOREIGN_KEYS:
        op.drop_constraint(_fk_name(table, column, referred), table, type_="foreignkey")
    limits = {(t, c): n for t, c, n in LIMITS}
    for table, (uuid_cols, ts_cols) in NATIVE.items():
        clauses = [
            f"ALTER COLUMN {c} TYPE uuid USING pg_temp.execstore_uuid({c})" for c in uuid_cols
        ]
        clauses += [
            f"ALTER COLUMN {c} TYPE timestamptz USING {c} AT TIME ZONE 'UTC'" for c in ts_cols
        ]
        clauses += [
            f"ALTER COLUMN {c} TYPE varchar({n})" for (t, c), n in limits.items() if t == table
        ]
        if table == "jobs":
            clauses.append(
                "ALTER COLUMN credential_ids TYPE uuid[] USING pg_temp.execstore_uuids(credential_ids)"
            )
        op.execute(f"ALTER TABLE {table} " + ", ".join(clauses))
    for table, column, referred, ondelete in FOREIGN_KEYS:
        if (table, column) in _OWNED_PAIRS:
            continue  # replaced by the composite tenant key below
        op.create_foreign_key(
            _fk_name(table, column, referred), table, referred, [column], ["id"], ondelete=ondelete
        )
    op.execute("DROP FUNCTION pg_temp.execstore_uuids(text[])")
    op.execute("DROP FUNCTION pg_temp.execstore_uuid(text)")
    _add_tenant_keys()
    _distributable_keys(up=True)


def downgrade() -> None:
    bind = op.get_bind()
    _distributable_keys(up=False)
    _drop_tenant_keys()
    if bind.dialect.name == "sqlite":
        for table, column, limit in LIMITS:
            with op.batch_alter_table(table) as batch:
                batch.alter_column(column, type_=sa.Text(), existing_type=sa.String(limit))
    else:
        for table, column, referred, _ in FOREIGN_KEYS:
            if (table, column) not in _OWNED_PAIRS:
                op.drop_constraint(_fk_name(table, column, referred), table, type_="foreignkey")
        limits = {(t, c) for t, c, _ in LIMITS}
        for table, (uuid_cols, ts_cols) in NATIVE.items():
            clauses = [f"ALTER COLUMN {c} TYPE text USING {c}::text" for c in uuid_cols]
            clauses += [
                f"ALTER COLUMN {c} TYPE timestamp(3) USING {c} AT TIME ZONE 'UTC'" for c in ts_cols
            ]
            clauses += [f"ALTER COLUMN {c} TYPE text" for (t, c) in limits if t == table]
            if table == "jobs":
                clauses.append(
                    "ALTER COLUMN credential_ids TYPE text[] USING credential_ids::text[]"
                )
            op.execute(f"ALTER TABLE {table} " + ", ".join(clauses))
        for table, column, referred, ondelete in FOREIGN_KEYS:
            op.create_foreign_key(
                _fk_name(table, column, referred),
                table,
                referred,
                [column],
                ["id"],
                ondelete=ondelete,
            )
    for child in DETACHED_CHILDREN:
        with op.batch_alter_table(child) as batch:
            batch.create_foreign_key(
                _fk_name(child, "job_id", "jobs"), "jobs", ["job_id"], ["id"], ondelete="CASCADE"
            )
