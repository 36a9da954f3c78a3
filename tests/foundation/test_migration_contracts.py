"""The upgrade guards of the contract revisions, with two organizations' rows (issue 17.5).

A contract revision drops a legacy table only once its backfill is complete; until
then it refuses with BackfillIncomplete before any step (the database stays below it,
the legacy rows intact). Each check counts the rows of every organization: one
organization's backfill being done says nothing about another's.
"""

from __future__ import annotations

import datetime as dt
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


async def _organization(url: str) -> dict[str, Any]:
    """An organization with a workflow and a job: their ids."""
    org = (await insert_any_row(url, "organizations"))["id"]
    workflow = (await insert_any_row(url, "workflows", organization_id=org))["id"]
    job = (await insert_any_row(url, "jobs", organization_id=org, workflow_id=workflow))["id"]
    return {"org": org, "workflow": workflow, "job": job}


async def _job(url: str, tenant: dict[str, Any]) -> Any:
    row = await insert_any_row(
        url, "jobs", organization_id=tenant["org"], workflow_id=tenant["workflow"]
    )
    return row["id"]


async def test_contract_execution_metadata_waits_for_a_clean_check_of_every_row(
    templates: Templates,
) -> None:
    from execstore.metadata.check import legacy_fingerprint

    below, revision = "compact_phi_audit", "contract_execution_metadata"
    async with templates.at(below) as url:
        a, b = await _organization(url), await _organization(url)
        for tenant, stamp in ((a, 123000), (b, 678000)):
            await insert_any_row(
                url,
                "execution_metadata_legacy",
                job_id=str(tenant["job"]),
                organization_id=str(tenant["org"]),
                workflow_id=str(tenant["workflow"]),
                updated_at=dt.datetime(2026, 1, 2, 3, 4, 5, stamp),
            )
            await insert_any_row(
                url,
                "execution_metadata",
                job_id=tenant["job"],
                organization_id=tenant["org"],
                workflow_id=tenant["workflow"],
            )
        await _refused(url, revision, "holds 2 row.*the backfill check never ran")

        async def record_check(unmigrated: int = 0, unexplained: int = 0) -> None:
            # What `execstore backfill metadata --check` records, with the running
            # code's fingerprint: the revision computes its own and must agree.
            engine = engine_for(url)
            async with engine.begin() as conn:
                seen = await conn.run_sync(legacy_fingerprint)
                await conn.execute(sa.text("DELETE FROM execution_metadata_state"))
                await conn.execute(
                    sa.insert(
                        sa.table(
                            "execution_metadata_state",
                            sa.column("name"),
                            sa.column("recorded_at"),
                            sa.column("details", sa.JSON()),
                        )
                    ),
                    {
                        "name": "backfill_check",
                        "recorded_at": dt.datetime(2026, 1, 3),
                        "details": {"unmigrated": unmigrated, "unexplained": unexplained, **seen},
                    },
                )
            await engine.dispose()

        await record_check(unmigrated=1)
        await _refused(url, revision, "found 1 unmigrated row")
        await record_check()

        # Organization b's slim row goes missing: a's still counts as migrated.
        await _execute(
            url, ("DELETE FROM execution_metadata WHERE job_id = :job", {"job": b["job"]})
        )
        await _refused(url, revision, "^1 legacy row.s. have no slim row yet")

        # A row added since the check: the table is no longer what the check saw.
        job = await _job(url, b)
        await insert_any_row(
            url, "execution_metadata_legacy", job_id=str(job), organization_id=str(b["org"])
        )
        await _refused(url, revision, "changed since the last backfill check")

        # b's jobs are deleted: their legacy rows are orphans and go with the table.
        await _execute(
            url,
            ("DELETE FROM jobs WHERE organization_id = :org", {"org": b["org"]}),
        )
        await record_check()
        await _passes_and_goes_back(url, revision, below)


async def test_contract_rag_rules_counts_every_organizations_unverified_rows(
    templates: Templates,
) -> None:
    below, revision = "contract_execution_metadata", "contract_rag_rules"
    async with templates.at(below) as url:
        rows: dict[str, list[str]] = {"a": [], "b": []}
        for name, count in (("a", 2), ("b", 1)):
            org = str(uuid.uuid4())
            for _ in range(count):
                row = await insert_any_row(url, "execution_rag_rules_legacy", organization_id=org)
                rows[name].append(row["id"])
        for legacy_id in [*rows["a"], str(uuid.uuid4())]:  # and a mark of no row at all
            await insert_any_row(url, "rag_backfill_verified", legacy_id=legacy_id)
        await _refused(url, revision, r"^contract_rag_rules: 1 legacy RAG row\(s\)")
        await insert_any_row(url, "rag_backfill_verified", legacy_id=rows["b"][0])
        await _passes_and_goes_back(url, revision, below)


@pytest.mark.parametrize(
    ("revision", "table", "what"),
    [
        ("contract_execution_log", "execution_log", "row"),
        ("contract_phi_audit", "phi_audit_log_legacy", "record"),
    ],
)
async def test_a_contract_counts_the_legacy_rows_of_every_organization(
    templates: Templates, revision: str, table: str, what: str
) -> None:
    below = {"contract_execution_log": "contract_rag_rules"}.get(revision, "contract_execution_log")
    async with templates.at(below) as url:
        jobs = {"a": str(uuid.uuid4()), "b": str(uuid.uuid4())}
        for name, count in (("a", 2), ("b", 1)):
            for _ in range(count):
                owner = {"job_id": jobs[name]} if table == "execution_log" else {}
                if table == "phi_audit_log_legacy":
                    owner = {"organization_id": jobs[name]}
                await insert_any_row(url, table, **owner)
        column = "job_id" if table == "execution_log" else "organization_id"
        await _refused(url, revision, f"holds 3 {what}")
        await _execute(url, (f"DELETE FROM {table} WHERE {column} = :a", {"a": jobs["a"]}))
        await _refused(url, revision, f"holds 1 {what}")
        await _execute(url, (f"DELETE FROM {table} WHERE {column} = :b", {"b": jobs["b"]}))
        await _passes_and_goes_back(url, revision, below)
