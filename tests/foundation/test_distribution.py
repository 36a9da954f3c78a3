"""The schema obeys Citus's rules, so distributing it needs no DDL change.

Citus (distributed PostgreSQL) requires that every primary key and unique constraint (or
unique index) of a distributed table include its distribution column; that a foreign key
between two distributed tables go from the distribution column to the distribution
column, inside one co-location group; that a reference table point only at reference
tables; and that a coordinator-local table have no foreign keys to or from distributed or
reference tables. A partitioned distributed table is distributed as a whole.
"""

from __future__ import annotations

import sqlalchemy as sa

from execstore.schema.distribution import PLACEMENTS, Distributed, Local, Reference
from execstore.schema.models import Base

TABLES = {table.name: table for table in Base.metadata.sorted_tables}


def _unique_column_sets(table: sa.Table) -> list[tuple[str, list[str]]]:
    sets = []
    if table.primary_key.columns:
        sets.append(("primary key", [c.name for c in table.primary_key.columns]))
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            sets.append((f"unique {constraint.name}", [c.name for c in constraint.columns]))
    for index in table.indexes:
        if index.unique:
            sets.append((f"unique index {index.name}", [c.name for c in index.columns]))
    return sets


def violations() -> list[str]:
    """Every way the models break a Citus rule (empty when distributable as they are)."""
    found = []
    for name in sorted(set(TABLES) - set(PLACEMENTS)):
        found.append(f"{name}: no placement in execstore.schema.distribution")
    for name in sorted(set(PLACEMENTS) - set(TABLES)):
        found.append(f"{name}: placed, but not a table of the schema")
    for name, table in TABLES.items():
        place = PLACEMENTS.get(name)
        if isinstance(place, Distributed):
            if place.column not in table.c:
                found.append(f"{name}: no distribution column {place.column}")
            for what, columns in _unique_column_sets(table):
                if place.column not in columns:
                    found.append(f"{name}: {what} {columns} lacks {place.column}")
        for fk in table.foreign_key_constraints:
            target = fk.referred_table.name
            there = PLACEMENTS.get(target)
            pairs = {e.parent.name: e.column.name for e in fk.elements}
            edge = f"{name} -> {target} {list(pairs)}"
            if isinstance(place, Local) or isinstance(there, Local):
                found.append(f"{edge}: a local table takes part in a foreign key")
            elif isinstance(place, Reference) and not isinstance(there, Reference):
                found.append(f"{edge}: a reference table points at a distributed table")
            elif isinstance(place, Distributed) and isinstance(there, Distributed):
                if place.colocate_with != there.colocate_with:
                    found.append(f"{edge}: across co-location groups")
                elif pairs.get(place.column) != there.column:
                    found.append(f"{edge}: not through the distribution columns")
    for name, place in PLACEMENTS.items():
        if name in TABLES and isinstance(place, Distributed):
            column = TABLES[name].c.get(place.column)
            owner = next(
                (
                    TABLES[t].c[p.column]
                    for t, p in PLACEMENTS.items()
                    if isinstance(p, Distributed)
                    and p.colocate_with == place.colocate_with
                    and t == p.colocate_with
                ),
                None,
            )
            if column is not None and owner is not None and str(column.type) != str(owner.type):
                found.append(f"{name}.{place.column}: type differs from its co-location group's")
    return found


def test_every_table_has_a_placement_and_obeys_the_rules() -> None:
    assert violations() == []


def test_the_checker_catches_what_citus_refuses() -> None:
    """Each rule, broken on a scratch copy of the schema, is reported."""
    saved = dict(PLACEMENTS)
    try:
        PLACEMENTS["healing_attempts"] = Reference()  # reference -> distributed (jobs)
        PLACEMENTS["job_result_archives"] = Distributed("job_id", "organizations")
        PLACEMENTS["phi_audit_log"] = Distributed("created_at", "organizations")
        PLACEMENTS["execution_rag_context"] = Local("oops")
        del PLACEMENTS["execution_metadata"]
        found = "\n".join(violations())
    finally:
        PLACEMENTS.clear()
        PLACEMENTS.update(saved)
    assert "healing_attempts -> jobs ['job_id']: a reference table points at a distributed" in found
    assert "job_result_archives -> jobs ['job_id']: across co-location groups" in found
    assert "execution_rag_rule_uses -> execution_rag_context ['job_id']: a local table" in found
    assert "execution_metadata: no placement" in found
    assert "phi_audit_log: primary key ['organization_id', 'seq'] lacks created_at" in found
    assert violations() == []
