"""The completion records the backfills write, state by state, and the contract steps that
require them; each comparison also with one side missing (both backends).

Every contract step requires its own backfill's completion record (one table,
``backfill_completions``; one helper, ``require_backfill_complete``), written by the
real backfill here, never by hand: it refuses without one, with only another
backfill's, and once the legacy table changed since; it passes with its own.

README, "Execution metadata": ``--check`` compares every legacy fat row with the slim
view; a legacy row without a slim row is unmigrated ("not moved yet"), a slim row without
a legacy row is an execution of the new code (nothing to compare), a legacy row whose job
is gone is orphaned (it goes with the table). A complete, clean check records the
backfill complete; one that is not removes the record.

README, "RAG context": the RAG backfill records complete once every legacy row is
verified; a ``legacy``-mode write un-verifies its row and removes the record, and the
backfill sets a row whose normalized copy differs aside unless told to rewrite it
(``--replace-differing``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.audit import backfill_audit
from execstore.errors import BackfillIncomplete
from execstore.logs.backfill import backfill_logs
from execstore.metadata import backfill_metadata
from execstore.metadata.check import check_metadata
from execstore.migrations.runner import current_revision, migrate
from execstore.operations import read_completion
from execstore.rag import backfill_rag, count_remaining
from execstore.schema import models as m

from .legacy_world import JOBS, expected

LEGACY = "execution_metadata_legacy"


async def sql(store: Any, statement: str, **params: Any) -> int:
    async with store.engine.begin() as conn:
        return int((await conn.execute(sa.text(statement), params)).rowcount or 0)


async def rows_of(store: Any, table: str = LEGACY) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)


async def refused(
    url: str,
    store: Any,
    message: str,
    *,
    target: str = "contract_execution_metadata",
    table: str = LEGACY,
) -> None:
    """``db upgrade`` to ``target`` refuses with ``message`` and changes nothing."""
    before, at = await rows_of(store, table), await current_revision(url)
    with pytest.raises(BackfillIncomplete, match=message):
        await migrate(url, target)
    assert await current_revision(url) == at != target
    assert await rows_of(store, table) == before


def not_recorded(backfill: str) -> str:
    return f"the {backfill} backfill has not recorded its completion"


async def test_each_contract_refuses_without_its_record_and_with_another_ones_only(
    legacy_store: Any, legacy_url: str
) -> None:
    """The four contract steps in order, each record written by its real backfill."""
    store, clock = legacy_store, legacy_store.clock
    await refused(legacy_url, store, not_recorded("metadata"))
    # Another backfill's record (audit's, complete: its legacy table is empty) is not it.
    audit = await backfill_audit(store.sessions, store.archives, clock=clock)
    assert (audit.set_aside, audit.details["complete"]) == ([], True)
    assert (await read_completion(store.sessions, "audit")) is not None
    await refused(legacy_url, store, not_recorded("metadata"))
    # Moved but not checked: the move records nothing, the check does.
    moved = await backfill_metadata(store.sessions, clock=clock)
    assert (moved.counts["moved"], moved.details["complete"]) == (4, False)
    await refused(legacy_url, store, not_recorded("metadata"))
    checked = await check_metadata(store.sessions, clock=clock)
    assert (checked.needs_attention, checked.details["complete"]) == (False, True)
    record = await read_completion(store.sessions, "metadata")
    assert record is not None
    assert (record.details["legacy_rows"], record.verified_at) == (4, clock.now())
    await migrate(legacy_url, "contract_execution_metadata")

    table = "execution_rag_rules_legacy"
    await refused(legacy_url, store, not_recorded("rag"), target="contract_rag_rules", table=table)
    rag = await backfill_rag(store.sessions, clock=clock)
    assert (rag.counts["moved"], rag.counts["remaining"], rag.details["complete"]) == (3, 0, True)
    await migrate(legacy_url, "contract_rag_rules")

    table = "execution_log"
    await refused(
        legacy_url, store, not_recorded("logs"), target="contract_execution_log", table=table
    )
    copied = await backfill_logs(store.engine, store.sessions, swap=False, clock=clock)
    assert (copied.details["phase"], copied.details["complete"]) == ("copying", False)
    await refused(
        legacy_url, store, not_recorded("logs"), target="contract_execution_log", table=table
    )
    logs = await backfill_logs(store.engine, store.sessions, clock=clock)
    assert (logs.details["phase"], logs.details["complete"], logs.counts["remaining"]) == (
        "verified",
        True,
        0,
    )
    await migrate(legacy_url)  # the audit step's record was there from the start
    assert await current_revision(legacy_url) == "contract_phi_audit"
    for name in ("metadata", "rag", "logs", "audit"):
        assert (await read_completion(store.sessions, name)) is not None, name


async def test_the_metadata_check_with_either_side_missing_gates_the_contract(
    legacy_store: Any, legacy_url: str
) -> None:
    store = legacy_store
    want = expected()
    cuid = want.jobs["cuid"]
    await refused(legacy_url, store, not_recorded("metadata"))
    assert (await backfill_metadata(store.sessions)).counts["moved"] == 4

    # Both sides, equal: a check of one organization compares but records nothing.
    scoped = await check_metadata(store.sessions, organization_id=want.org, clock=store.clock)
    assert (scoped.counts["compared"], scoped.counts["identical"]) == (4, 4)
    assert (scoped.needs_attention, scoped.details["recorded"]) == (False, False)
    await refused(legacy_url, store, not_recorded("metadata"))
    # A difference nothing explains (the legacy row's creation time), nothing unmigrated.
    moved = "UPDATE execution_metadata_legacy SET created_at = :at WHERE id = :id"
    first = {"id": "ckmeta0000000000000000000"}
    await sql(store, moved, at=dt.datetime(2020, 1, 1), **first)
    odd = await check_metadata(store.sessions, clock=store.clock)
    assert (odd.counts["unmigrated"], odd.counts["unexplained"], odd.needs_attention) == (
        0,
        1,
        True,
    )
    assert [x.field for x in odd.details["unexplained"]] == ["created_at"]
    assert [a.key for a in odd.set_aside] == [first["id"]]
    assert odd.set_aside[0].reason.startswith("unexplained difference in created_at")
    # Listed or not, every difference counts: one beyond max_listed is still set aside.
    unlisted = await check_metadata(store.sessions, max_listed=0, clock=store.clock)
    assert (unlisted.details["unexplained"], unlisted.needs_attention) == ([], True)
    assert [a.reason for a in unlisted.set_aside] == [
        "1 more unexplained difference(s) (max_listed=0)"
    ]
    await refused(legacy_url, store, not_recorded("metadata"))
    await sql(store, moved, at=dt.datetime(2026, 9, 10, 8, 0), **first)
    full = await check_metadata(store.sessions, clock=store.clock)
    assert (full.counts["legacy_rows"], full.counts["compared"]) == (4, 4)
    assert (full.needs_attention, full.details["recorded"]) == (False, True)

    # A legacy row whose slim row went missing after the clean check: the next check
    # finds it unmigrated and removes the record; the contract refuses until it is back.
    async with store.sessions() as session, session.begin():
        await session.execute(
            sa.delete(m.ExecutionMetadata).where(m.ExecutionMetadata.job_id == cuid)
        )
    missing = await check_metadata(store.sessions, clock=store.clock)
    assert (missing.counts["compared"], missing.needs_attention) == (3, True)
    assert [a.reason for a in missing.set_aside] == ["not moved yet"]
    assert missing.details["complete"] is False
    await refused(legacy_url, store, not_recorded("metadata"))
    assert (await backfill_metadata(store.sessions)).counts["moved"] == 1

    # A slim row without a legacy row (an execution of the new code): nothing to compare.
    async with store.unit(want.org) as uow:
        workflow = (await uow.jobs.get(cuid)).workflow_id
        new = (await uow.jobs.create(workflow_id=workflow)).id
        await uow.metadata.create(new)
    fresh = await check_metadata(store.sessions, clock=store.clock)
    assert (fresh.counts["legacy_rows"], fresh.counts["compared"]) == (4, 4)
    assert (fresh.counts["identical"], fresh.needs_attention) == (4, False)

    # A legacy row deleted since that check: the table changed, the contract refuses.
    assert await sql(store, f"DELETE FROM {LEGACY} WHERE id = 'ckmeta0000000000000000003'") == 1
    await refused(legacy_url, store, r"changed since the metadata backfill completed \(then 4")
    # The job of a legacy row deleted (its slim row goes with it): orphaned, explained.
    async with store.unit(want.org) as uow:
        await uow.jobs.delete(want.jobs["braced"])
    orphaned = await check_metadata(store.sessions, clock=store.clock)
    assert (orphaned.counts["legacy_rows"], orphaned.counts["compared"]) == (3, 2)
    assert (orphaned.needs_attention, orphaned.details["recorded"]) == (False, True)
    assert orphaned.details["orphaned"] == ["ckmeta0000000000000000002"]
    assert orphaned.counts["unmigrated"] == 0
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
    legacy = await rows_of(store, "execution_rag_rules_legacy")
    return legacy, legacy - await count_remaining(store.sessions)


async def test_rag_verified_marks_through_every_write_and_the_contract(
    legacy_store: Any, legacy_url: str
) -> None:
    store = legacy_store
    want = expected()
    table = "execution_rag_rules_legacy"

    async def rag_refused(message: str) -> None:
        await refused(legacy_url, store, message, target="contract_rag_rules", table=table)

    await backfill_metadata(store.sessions)
    assert not (await check_metadata(store.sessions, clock=store.clock)).needs_attention
    await migrate(legacy_url, "contract_execution_metadata")
    assert await rag_verified(store) == (3, 0)
    partial = await backfill_rag(store.sessions, limit=2, clock=store.clock)
    assert (partial.counts["moved"], partial.counts["remaining"]) == (2, 1)
    assert partial.details["complete"] is False
    # A dual write while the backfill is part-way: both sides at once, verified as found.
    plain = want.jobs["plain"]
    async with store.unit(want.org, rag_mode="dual_write_read_normalized") as uow:
        await uow.rag.save(plain, {"ragRetrievalTimeMs": 5, "totalRulesRetrieved": 0})
    assert await rag_verified(store) == (4, 2)
    await rag_refused(not_recorded("rag"))
    done = await backfill_rag(store.sessions, clock=store.clock)
    assert (done.counts["moved"], done.counts["already_normalized"]) == (1, 1)
    assert done.details["complete"] is True

    cuid, upper = want.jobs["cuid"], want.jobs["upper"]
    # Writes in the dual modes change both sides: the row stays verified, the record stays.
    for mode in ("dual_write_read_legacy", "dual_write_read_normalized"):
        async with store.unit(want.org, rag_mode=mode) as uow:
            await uow.rag.mark_rule_used(cuid, 0, step_index=1)
    assert await rag_verified(store) == (4, 4)
    assert await read_completion(store.sessions, "rag") is not None
    # A legacy-mode write changes one side only: that row is verified no more, and the
    # backfill is no longer complete.
    async with store.unit(want.org, rag_mode="legacy") as uow:
        await uow.rag.mark_rule_used(upper, 1, step_index=2)
    assert await rag_verified(store) == (4, 3)
    assert await read_completion(store.sessions, "rag") is None
    await rag_refused(not_recorded("rag"))
    # Its normalized copy now differs: set aside, unless rewritten from legacy.
    aside = await backfill_rag(store.sessions, clock=store.clock)
    assert [a.reason for a in aside.set_aside] == [
        f"ValueError: normalized context of job {upper} differs from the legacy row "
        "(--replace-differing rewrites it from legacy)"
    ]
    assert (aside.counts["remaining"], aside.details["complete"]) == (1, False)
    replaced = await backfill_rag(store.sessions, replace_differing=True, clock=store.clock)
    assert (replaced.counts["moved"], replaced.set_aside) == (1, [])
    assert replaced.details["complete"] is True
    async with store.unit(want.org, rag_mode="normalized") as uow:
        assert (await uow.rag.get(upper)).rules[1].used_at_step_index == 2
    # A verified row deleted from legacy leaves its mark behind: it is not counted, but
    # the table changed since the record: the backfill runs again (nothing to move).
    await sql(store, "DELETE FROM execution_rag_rules_legacy WHERE job_id = :j", j=JOBS["braced"])
    assert await rag_verified(store) == (3, 3)
    await rag_refused(r"changed since the rag backfill completed \(then 4 row.s., now 3\)")
    again = await backfill_rag(store.sessions, clock=store.clock)
    assert (again.counts["moved"], again.details["complete"]) == (0, True)
    await migrate(legacy_url, "contract_rag_rules")
    assert await current_revision(legacy_url) == "contract_rag_rules"
