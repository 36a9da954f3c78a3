"""The backfill check and the RAG verified marks, state by state, and the contract steps
that read them; each comparison also with one side missing (both backends).

README, "Execution metadata": ``--check`` compares every legacy fat row with the slim
view; a legacy row without a slim row is unmigrated ("not moved yet"), a slim row without
a legacy row is an execution of the new code (nothing to compare), a legacy row whose job
is gone is orphaned (it goes with the table). ``contract_execution_metadata`` refuses
until a complete check found nothing unmigrated or unexplained, the table is unchanged
since, and every legacy row of a job that exists has its slim row.

README, "RAG context": ``contract_rag_rules`` refuses until every legacy row is verified;
a ``legacy``-mode write un-verifies its row, and the backfill sets a row whose normalized
copy differs aside unless told to rewrite it (``--replace-differing``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.errors import BackfillIncomplete
from execstore.metadata import backfill_metadata
from execstore.metadata.check import check_metadata
from execstore.migrations.runner import current_revision, migrate
from execstore.rag import backfill_rag, backfill_status
from execstore.schema import models as m

from .legacy_world import JOBS, expected

LEGACY = "execution_metadata_legacy"


async def sql(store: Any, statement: str, **params: Any) -> int:
    async with store.engine.begin() as conn:
        return int((await conn.execute(sa.text(statement), params)).rowcount or 0)


async def legacy_rows(store: Any) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(sa.text(f"SELECT count(*) FROM {LEGACY}")) or 0)


async def refused(
    url: str, store: Any, message: str, *, target: str = "contract_execution_metadata"
) -> None:
    """``db upgrade`` to ``target`` refuses with ``message`` and changes nothing."""
    before = await legacy_rows(store)
    with pytest.raises(BackfillIncomplete, match=message):
        await migrate(url, target)
    assert await current_revision(url) != target
    assert await legacy_rows(store) == before


async def test_the_metadata_check_with_either_side_missing_gates_the_contract(
    legacy_store: Any, legacy_url: str
) -> None:
    store = legacy_store
    want = expected()
    cuid = want.jobs["cuid"]
    await refused(legacy_url, store, "check never ran")
    assert (await backfill_metadata(store.sessions)).moved == 4

    # Both sides, equal: a check of one organization compares but records nothing.
    scoped = await check_metadata(store.sessions, organization_id=want.org, clock=store.clock)
    assert (scoped.compared, scoped.identical, scoped.clean, scoped.recorded) == (4, 4, True, False)
    await refused(legacy_url, store, "check never ran")
    # A difference nothing explains (the legacy row's creation time), nothing unmigrated.
    moved = "UPDATE execution_metadata_legacy SET created_at = :at WHERE id = :id"
    first = {"id": "ckmeta0000000000000000000"}
    await sql(store, moved, at=dt.datetime(2020, 1, 1), **first)
    odd = await check_metadata(store.sessions, clock=store.clock)
    assert (odd.unmigrated, odd.unexplained_count, odd.clean) == ([], 1, False)
    assert [x.field for x in odd.unexplained] == ["created_at"]
    await refused(legacy_url, store, "found 0 unmigrated row.* and 1 unexplained")
    await sql(store, moved, at=dt.datetime(2026, 9, 10, 8, 0), **first)
    full = await check_metadata(store.sessions, clock=store.clock)
    assert (full.legacy_rows, full.compared, full.clean, full.recorded) == (4, 4, True, True)

    # A legacy row whose slim row went missing after the clean check: the contract counts
    # again (the legacy table did not change) and refuses; the next check says why.
    async with store.sessions() as session, session.begin():
        await session.execute(
            sa.delete(m.ExecutionMetadata).where(m.ExecutionMetadata.job_id == cuid)
        )
    await refused(legacy_url, store, "1 legacy row.* no slim row yet")
    missing = await check_metadata(store.sessions, clock=store.clock)
    assert (missing.compared, missing.clean) == (3, False)
    assert [a.reason for a in missing.unmigrated] == ["not moved yet"]
    await refused(legacy_url, store, "found 1 unmigrated row")
    assert (await backfill_metadata(store.sessions)).moved == 1

    # A slim row without a legacy row (an execution of the new code): nothing to compare.
    async with store.unit(want.org) as uow:
        workflow = (await uow.jobs.get(cuid)).workflow_id
        new = (await uow.jobs.create(workflow_id=workflow)).id
        await uow.metadata.create(new)
    fresh = await check_metadata(store.sessions, clock=store.clock)
    assert (fresh.legacy_rows, fresh.compared, fresh.identical, fresh.clean) == (4, 4, 4, True)

    # A legacy row deleted since that check: the table changed, the contract refuses.
    assert await sql(store, f"DELETE FROM {LEGACY} WHERE id = 'ckmeta0000000000000000003'") == 1
    await refused(legacy_url, store, "changed since the last backfill check")
    # The job of a legacy row deleted (its slim row goes with it): orphaned, explained.
    async with store.unit(want.org) as uow:
        await uow.jobs.delete(want.jobs["braced"])
    orphaned = await check_metadata(store.sessions, clock=store.clock)
    assert (orphaned.legacy_rows, orphaned.compared, orphaned.clean) == (3, 2, True)
    assert orphaned.orphaned == ["ckmeta0000000000000000002"]
    assert orphaned.unmigrated == []
    await migrate(legacy_url, "contract_execution_metadata")  # drops the orphan with the table
    async with store.unit(want.org) as uow:
        assert [
            (await uow.metadata.get(job)).status.name for job in (cuid, want.jobs["upper"], new)
        ] == [
            "COMPLETED",
            "COMPLETED",
            "PENDING",
        ]


async def rag_verified(store: Any) -> tuple[int, int]:
    status = await backfill_status(store.sessions)
    return status.legacy_rows, status.verified_rows


async def test_rag_verified_marks_through_every_write_and_the_contract(
    legacy_store: Any, legacy_url: str
) -> None:
    store = legacy_store
    want = expected()
    await backfill_metadata(store.sessions)
    assert (await check_metadata(store.sessions, clock=store.clock)).clean
    await migrate(legacy_url, "contract_execution_metadata")
    assert await rag_verified(store) == (3, 0)
    partial = await backfill_rag(store.sessions, limit=2, clock=store.clock)
    assert (partial.moved, partial.status.remaining) == (2, 1)
    # A dual write while the backfill is part-way: both sides at once, verified as found.
    plain = want.jobs["plain"]
    async with store.unit(want.org, rag_mode="dual_write_read_normalized") as uow:
        await uow.rag.save(plain, {"ragRetrievalTimeMs": 5, "totalRulesRetrieved": 0})
    assert await rag_verified(store) == (4, 2)
    with pytest.raises(BackfillIncomplete, match="2 legacy RAG row"):
        await migrate(legacy_url, "contract_rag_rules")
    assert await current_revision(legacy_url) == "contract_execution_metadata"
    done = await backfill_rag(store.sessions, clock=store.clock)
    assert (done.moved, done.already_normalized, done.status.complete) == (1, 1, True)

    cuid, upper = want.jobs["cuid"], want.jobs["upper"]
    # Writes in the dual modes change both sides: the row stays verified.
    for mode in ("dual_write_read_legacy", "dual_write_read_normalized"):
        async with store.unit(want.org, rag_mode=mode) as uow:
            await uow.rag.mark_rule_used(cuid, 0, step_index=1)
    assert await rag_verified(store) == (4, 4)
    # A legacy-mode write changes one side only: that row is verified no more.
    async with store.unit(want.org, rag_mode="legacy") as uow:
        await uow.rag.mark_rule_used(upper, 1, step_index=2)
    assert await rag_verified(store) == (4, 3)
    with pytest.raises(BackfillIncomplete, match="1 legacy RAG row"):
        await migrate(legacy_url, "contract_rag_rules")
    # Its normalized copy now differs: set aside, unless rewritten from legacy.
    aside = await backfill_rag(store.sessions, clock=store.clock)
    assert [a.reason for a in aside.set_aside] == [
        f"ValueError: normalized context of job {upper} differs from the legacy row "
        "(--replace-differing rewrites it from legacy)"
    ]
    assert aside.status.remaining == 1
    replaced = await backfill_rag(store.sessions, replace_differing=True, clock=store.clock)
    assert (replaced.moved, replaced.set_aside, replaced.status.complete) == (1, [], True)
    async with store.unit(want.org, rag_mode="normalized") as uow:
        assert (await uow.rag.get(upper)).rules[1].used_at_step_index == 2
    # A verified row deleted from legacy leaves its mark behind: it is not counted.
    await sql(store, "DELETE FROM execution_rag_rules_legacy WHERE job_id = :j", j=JOBS["braced"])
    assert await rag_verified(store) == (3, 3)
    await migrate(legacy_url, "contract_rag_rules")
    assert await current_revision(legacy_url) == "contract_rag_rules"
