"""What a database's catalog says about its schema, in a form two databases can be compared by.

:func:`snapshot` reads, for every table: its columns in order (type, nullability,
server default, identity), constraints, indexes (method, options, expressions, partial
predicates), storage options and partition key; and the triggers, functions and
extended statistics around them. PostgreSQL through ``pg_catalog`` (``pg_get_*def``);
SQLite through its pragmas and the SQL of its indexes and triggers. Names the catalog
makes up (SQLite's autoindexes) and spelling that does not change a schema
(whitespace, parentheses around a default, quoting) are left out.

Partitions of the log table are data (created month by month), not schema: they are
listed apart under ``"partitions"`` (name and bounds), so a comparison with the models
can leave them out and a round trip through a revision can still check them.

:func:`create_from_models` builds the schema the models describe (``Base.metadata``
and the triggers, expression index and SQLite log-table fallback declared beside
them), to compare a migrated database with.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

__all__ = ["create_from_models", "differences", "models_copy", "snapshot"]

_PARTITION = re.compile(r"^execution_log_partitioned_(p\d{4}_\d{2}(_\d+)?|default)$")


def snapshot(conn: sa.Connection) -> dict[str, Any]:
    """The schema of the database ``conn`` is connected to (see the module docstring)."""
    if conn.dialect.name == "postgresql":
        return _postgres(conn)
    return _sqlite(conn)


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Lines present in one snapshot and not the other (``-`` only in a, ``+`` only in b)."""
    left, right = set(_lines(a)), set(_lines(b))
    return sorted(f"- {x}" for x in left - right) + sorted(f"+ {x}" for x in right - left)


def _lines(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in _lines(v, f"{prefix}{k}: ")]
    return [f"{prefix}{value!r}"]


# -- PostgreSQL ---------------------------------------------------------------------------

_PG_RELATIONS = """
c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
AND NOT c.relispartition AND c.relname <> 'alembic_version'
"""
_PG_TABLES = f"""
SELECT c.relname, c.relkind, coalesce(c.reloptions, '{{}}'),
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END
FROM pg_class c WHERE {_PG_RELATIONS}
"""
_PG_COLUMNS = f"""
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE {_PG_RELATIONS} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum
"""
_PG_CONSTRAINTS = f"""
SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
FROM pg_class c JOIN pg_constraint k ON k.conrelid = c.oid WHERE {_PG_RELATIONS}
"""
_PG_INDEXES = f"""
SELECT c.relname, x.relname, pg_get_indexdef(i.indexrelid), coalesce(x.reloptions, '{{}}')
FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid JOIN pg_class x ON x.oid = i.indexrelid
WHERE {_PG_RELATIONS}
"""
_PG_TRIGGERS = f"""
SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
FROM pg_class c JOIN pg_trigger t ON t.tgrelid = c.oid
WHERE {_PG_RELATIONS} AND NOT t.tgisinternal
"""
_PG_FUNCTIONS = """
SELECT p.proname, pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND NOT EXISTS (
    SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
"""
_PG_STATISTICS = """
SELECT s.stxname, pg_get_statisticsobjdef(s.oid)
FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
WHERE n.nspname = 'public'
"""
_PG_PARTITIONS = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = 'execution_log_partitioned'
"""


def _postgres(conn: sa.Connection) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    for name, kind, options, partition_key in conn.exec_driver_sql(_PG_TABLES):
        if _PARTITION.match(name):  # a detached partition waiting for archival
            continue
        tables[name] = {
            "kind": kind,
            "options": sorted(options),
            "partition_by": partition_key,
            "columns": [],
            "constraints": {},
            "indexes": {},
            "triggers": {},
        }
    for table, *column in conn.exec_driver_sql(_PG_COLUMNS):
        if table in tables:
            tables[table]["columns"].append(tuple(column))
    for table, name, definition in conn.exec_driver_sql(_PG_CONSTRAINTS):
        if table in tables:
            tables[table]["constraints"][name] = definition
    for table, name, definition, options in conn.exec_driver_sql(_PG_INDEXES):
        if table in tables:
            tables[table]["indexes"][name] = (definition, sorted(options))
    for table, name, definition in conn.exec_driver_sql(_PG_TRIGGERS):
        if table in tables:
            tables[table]["triggers"][name] = definition
    return {
        "tables": tables,
        "functions": dict(conn.exec_driver_sql(_PG_FUNCTIONS).all()),
        "statistics": dict(conn.exec_driver_sql(_PG_STATISTICS).all()),
        "partitions": dict(conn.exec_driver_sql(_PG_PARTITIONS).all()),
    }


# -- SQLite -------------------------------------------------------------------------------


def _spaces(sql: str) -> str:
    return re.sub(r"\s+", " ", sql.replace('"', "")).strip()


def _default(value: str | None) -> str | None:
    while value is not None and value.startswith("(") and value.endswith(")"):
        value = value[1:-1]
    return value


def _sqlite(conn: sa.Connection) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    master = conn.exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' AND tbl_name <> 'alembic_version'"
    ).all()
    for kind, name, _, sql in master:
        if kind != "table":
            continue
        columns = [
            (c[1], c[2].upper(), bool(c[3]), _default(c[4]), c[5])
            for c in conn.exec_driver_sql(f'PRAGMA table_xinfo("{name}")')
        ]
        foreign_keys: dict[int, list[Any]] = {}
        for fk in conn.exec_driver_sql(f'PRAGMA foreign_key_list("{name}")'):
            foreign_keys.setdefault(fk[0], []).append((fk[2], fk[3], fk[4], fk[5], fk[6]))
        indexes = {}
        for _, index, unique, origin, partial in conn.exec_driver_sql(
            f'PRAGMA index_list("{name}")'
        ):
            keys = [r[2] for r in conn.exec_driver_sql(f'PRAGMA index_info("{index}")')]
            label = index if origin == "c" else f"{origin}:{','.join(keys)}"
            indexes[label] = (bool(unique), keys, bool(partial))
        tables[name] = {
            "columns": columns,
            "autoincrement": "AUTOINCREMENT" in sql.upper(),
            "constraint_names": sorted(re.findall(r"CONSTRAINT\s+\"?(\w+)", sql)),
            "foreign_keys": sorted(tuple(sorted(v)) for v in foreign_keys.values()),
            "indexes": indexes,
        }
    for kind, name, table, sql in master:
        if kind == "index" and sql is not None:
            tables[table]["indexes"][name] += (_spaces(sql),)
        elif kind == "trigger":
            tables[table].setdefault("triggers", {})[name] = _spaces(sql)
    return {"tables": tables, "partitions": {}}


# -- the models' own schema ------------------------------------------------------------------


def models_copy() -> sa.MetaData:
    """A copy of ``Base.metadata`` to change, that builds the same schema as the original
    (``to_metadata`` alone drops indexes' ``ddl_if`` and ``after_create`` listeners)."""
    from execstore.schema.models import Base

    copy = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        new = table.to_metadata(copy)
        conditions = {i.name: getattr(i, "_ddl_if", None) for i in table.indexes}
        for index in new.indexes:
            index._ddl_if = conditions[index.name]  # type: ignore[attr-defined]
        for listener in table.dispatch.after_create:
            sa.event.listen(new, "after_create", listener)
    return copy


def create_from_models(conn: sa.Connection, metadata: sa.MetaData | None = None) -> None:
    """Create the schema the models describe (``metadata``, default ``Base.metadata``)."""
    from execstore.schema import audit, results
    from execstore.schema import metadata as metadata_schema
    from execstore.schema.models import Base

    metadata = metadata if metadata is not None else Base.metadata
    dialect = conn.dialect.name
    tables = list(metadata.sorted_tables)
    if dialect == "sqlite":
        # The documented fallback: the log table's id is the rowid, AUTOINCREMENT.
        log = metadata.tables["execution_log_partitioned"]
        tables.remove(log)
        fallback = sa.MetaData(naming_convention=metadata.naming_convention)
        plain = sa.Table(
            log.name,
            fallback,
            *[
                sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True)
                if c.name == "id"
                else c._copy()
                for c in log.columns
            ],
            *[sa.Index(i.name, *[c.name for c in i.columns]) for i in log.indexes],
            sqlite_autoincrement=True,
        )
        plain.create(conn)
    metadata.create_all(conn, tables=tables)
    for statement in audit.append_only_ddl(dialect):
        conn.exec_driver_sql(statement)
    if dialect == "postgresql":
        for statement in metadata_schema.SUMMARY_TRIGGERS_DDL:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(
            f"CREATE INDEX {results.LEGACY_JOB_UUID_INDEX} "
            f"ON execution_screenshots_legacy (({results.LEGACY_JOB_UUID_SQL}))"
        )
