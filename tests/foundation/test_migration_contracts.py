"""The upgrade guards of the contract revisions, with two organizations' rows (issue 17.5).

A contract revision drops a legacy table only once its backfill recorded its completion
(or the table is empty: nothing to backfill); until then it refuses with
BackfillIncomplete before any step (the database stays below it, the legacy rows
intact). The count covers the rows of every organization: one organization's backfill
being done says nothing about another's.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.errors import BackfillIncomplete
from execstore.migrations.runner import downgrade, migrate
from support.migration_db import Templates, engine_for, insert_any_row, state_of


async def _execute(url: str, *statements: tuple[str, dict[str, Any]]) -> None:
    engine = engine_for(url)
    async with engine.begin() as conn:
        for sql, params in statements:
            await conn.execute(sa.text(sql), params)
    await engine.dispose()


async def _refused(url: str, revision: str, match: str) -> None:
    """Upgrading to ``revision`` is refused and changes nothing."""
    before = await state_of(url)
    with pytest.raises(BackfillIncomplete, match=match):
        await migrate(url, revision)
    assert await state_of(url) == before


async def _passes_and_goes_back(url: str, revision: str, below: str) -> None:
    await migrate(url, revision)
    assert (await state_of(url))["revision"] == revision
    await downgrade(url, below)


_BELOW = {
    "contract_execution_metadata": "compact_phi_audit",
    "contract_rag_rules": "contract_execution_metadata",
    "contract_execution_log": "contract_rag_rules",
    "contract_phi_audit": "contract_execution_log",
}
_LEGACY = {
    "contract_execution_metadata": ("execution_metadata_legacy", "organization_id", "metadata"),
    "contract_rag_rules": ("execution_rag_rules_legacy", "organization_id", "rag"),
    "contract_execution_log": ("execution_log", "job_id", "logs"),
    "contract_phi_audit": ("phi_audit_log_legacy", "organization_id", "audit"),
}


@pytest.mark.parametrize("revision", list(_LEGACY))
async def test_a_contract_counts_the_legacy_rows_of_every_organization(
    templates: Templates, revision: str
) -> None:
    """Without its backfill's completion record a contract refuses while its legacy table
    holds a row of any organization; with the table empty there is nothing to backfill.
    (The record itself, written by the real backfills, is tested in
    ``tests/phases/test_contract_gates.py``.)"""
    table, column, backfill = _LEGACY[revision]
    async with templates.at(_BELOW[revision]) as url:
        owners = {"a": str(uuid.uuid4()), "b": str(uuid.uuid4())}
        for name, count in (("a", 2), ("b", 1)):
            for _ in range(count):
                await insert_any_row(url, table, **{column: owners[name]})
        missing = f"the {backfill} backfill has not recorded its completion"
        await _refused(url, revision, f"^{table} holds 3 row.s. and {missing}")
        await _execute(url, (f"DELETE FROM {table} WHERE {column} = :a", {"a": owners["a"]}))
        await _refused(url, revision, f"^{table} holds 1 row.s. and {missing}")
        await _execute(url, (f"DELETE FROM {table} WHERE {column} = :b", {"b": owners["b"]}))
        await _passes_and_goes_back(url, revision, _BELOW[revision])
