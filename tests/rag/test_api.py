"""The ``uow.rag`` contract, in every RagMode, on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from execstore.errors import Conflict, InvalidArgument, NotFound
from execstore.rag import RagContext
from support.timeline import new_jobs, new_org

from .conftest import MODES, WHEN, make_context

SINCE = WHEN - dt.timedelta(days=30)
UNTIL = WHEN + dt.timedelta(days=1)


@pytest.mark.parametrize("mode", MODES)
async def test_get_returns_exactly_what_was_saved(rag_store: Any, mode: str) -> None:
    org, wf = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        assert await uow.rag.find(job) is None
        with pytest.raises(NotFound, match="no RAG context"):
            await uow.rag.get(job)
        saved = await uow.rag.save(job, make_context(12))
    async with rag_store.unit(org, rag_mode=mode) as uow:
        got = await uow.rag.get(job)
    assert got == saved
    assert [r.rule_id for r in got.rules] == [f"R-{i:04d}" for i in range(12)]
    assert got.rules[3].retrieval_score == 0.92
    assert got.average_retrieval_score == 0.8125
    assert got.retrieved_at == WHEN
    assert [p.payer_id for p in got.payers] == ["P-000", "P-001"]
    assert [m.code for m in got.modifiers] == ["25", "59"]


@pytest.mark.parametrize("mode", MODES)
async def test_order_is_the_saved_order_not_the_catalogs(rag_store: Any, mode: str) -> None:
    org, wf = await new_org(rag_store)
    first, second = await new_jobs(rag_store, org, 2, workflow=wf)
    forward = make_context(6)
    backward = make_context(6)
    for key in ("rules", "payers", "modifiers"):
        backward[key] = list(reversed(backward[key]))
    async with rag_store.unit(org, rag_mode=mode) as uow:
        await uow.rag.save(first, forward)  # catalog ids follow this order
        saved = await uow.rag.save(second, backward)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        got = await uow.rag.get(second)
    assert got == saved
    assert [r.rule_id for r in got.rules] == [f"R-{i:04d}" for i in reversed(range(6))]
    assert [p.payer_id for p in got.payers] == ["P-001", "P-000"]
    assert [m.code for m in got.modifiers] == ["59", "25"]


async def test_the_insert_itself_checks_the_jobs_organization(rag_store: Any) -> None:
    """Defence in depth: the INSERT ... SELECT refuses another organization's job."""
    from execstore.rag import normalized
    from execstore.rag.repository import as_context

    org, wf = await new_org(rag_store)
    other, _ = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    async with rag_store.sessions() as session, session.begin():
        assert not await normalized.insert(session, other, job, as_context(make_context(2)))
        assert await normalized.insert(session, org, job, as_context(make_context(2)))


@pytest.mark.parametrize("mode", MODES)
async def test_saving_again_is_a_no_op_and_a_different_context_conflicts(
    rag_store: Any, mode: str
) -> None:
    org, wf = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        first = await uow.rag.save(job, make_context(3))
        assert await uow.rag.save(job, make_context(3)) == first
        with pytest.raises(Conflict):
            await uow.rag.save(job, make_context(4))


@pytest.mark.parametrize("mode", MODES)
async def test_mark_rule_used_by_id_and_position(rag_store: Any, mode: str) -> None:
    org, wf = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    at = WHEN + dt.timedelta(minutes=2, microseconds=456789)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        await uow.rag.save(job, make_context(5))
        marked = await uow.rag.mark_rule_used(job, "R-0002", 7, "modifier 25 applied", at)
        assert marked.was_used
        await uow.rag.mark_rule_used(job, 4, step_index=9, reason=None, at=at)
        await uow.rag.mark_rule_used(job, "R-0002", 8, "again", at)  # replaces, counts once
        with pytest.raises(NotFound, match="R-9999"):
            await uow.rag.mark_rule_used(job, "R-9999", 1)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        got = await uow.rag.get(job)
    assert got.total_rules_used == 2
    used = [
        (i, r.used_at_step_index, r.usage_reason) for i, r in enumerate(got.rules) if r.was_used
    ]
    assert used == [(2, 8, "again"), (4, 9, None)]
    assert got.rules[2].used_at == at.replace(microsecond=579000)  # kept to the millisecond


@pytest.mark.parametrize("mode", MODES)
async def test_rule_usage_pages_through_the_jobs_that_retrieved_a_rule(
    rag_store: Any, mode: str
) -> None:
    org, wf = await new_org(rag_store)
    jobs = await new_jobs(rag_store, org, 5, workflow=wf)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        for i, job in enumerate(jobs):
            # job 4 retrieved other rules only; job 0 is outside the window
            prefix = "X" if i == 4 else "R"
            at = WHEN - dt.timedelta(days=60 if i == 0 else i)
            await uow.rag.save(job, make_context(3, at=at, prefix=prefix))
        await uow.rag.mark_rule_used(jobs[2], "R-0001", 3, "used here")
    async with rag_store.unit(org, rag_mode=mode) as uow:
        first = await uow.rag.rule_usage("R-0001", SINCE, UNTIL, limit=2)
        assert first.next_cursor is not None
        second = await uow.rag.rule_usage("R-0001", SINCE, UNTIL, limit=2, cursor=first.next_cursor)
        assert second.next_cursor is None
        none = await uow.rag.rule_usage("R-7777", SINCE, UNTIL)
    items = first.items + second.items
    assert [u.job_id for u in items] == [jobs[3], jobs[2], jobs[1]]  # oldest first
    assert [u.position for u in items] == [1, 1, 1]
    used = [u for u in first.items + second.items if u.was_used]
    assert [(u.job_id, u.used_at_step_index, u.usage_reason) for u in used] == [
        (jobs[2], 3, "used here")
    ]
    assert none.items == []


@pytest.mark.parametrize("mode", MODES)
async def test_rule_usage_pages_hold_at_most_limit_items(rag_store: Any, mode: str) -> None:
    org, wf = await new_org(rag_store)
    jobs = await new_jobs(rag_store, org, 5, workflow=wf)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        for i, job in enumerate(jobs):
            await uow.rag.save(job, make_context(2, at=WHEN - dt.timedelta(days=i)))
    pages = []
    after = None
    async with rag_store.unit(org, rag_mode=mode) as uow:
        while True:
            page = await uow.rag.rule_usage("R-0001", SINCE, UNTIL, limit=2, cursor=after)
            pages.append([u.job_id for u in page.items])
            if page.next_cursor is None:
                break
            after = page.next_cursor
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [job for page in pages for job in page] == jobs[::-1]  # oldest first, each once


async def test_a_bad_usage_query_is_invalid_argument(rag_store: Any) -> None:
    org, _ = await new_org(rag_store)
    async with rag_store.unit(org) as uow:
        with pytest.raises(InvalidArgument, match="limit"):
            await uow.rag.rule_usage("R-0001", SINCE, UNTIL, limit=0)
        with pytest.raises(InvalidArgument, match="until"):
            await uow.rag.top_rules(UNTIL, SINCE)


@pytest.mark.parametrize("mode", MODES)
async def test_top_rules_counts_retrievals_and_uses(rag_store: Any, mode: str) -> None:
    org, wf = await new_org(rag_store)
    jobs = await new_jobs(rag_store, org, 3, workflow=wf)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        for n, job in zip((1, 2, 3), jobs, strict=True):
            await uow.rag.save(job, make_context(n))
        await uow.rag.mark_rule_used(jobs[1], "R-0001", 1)
        await uow.rag.mark_rule_used(jobs[2], "R-0001", 1)
        await uow.rag.mark_rule_used(jobs[2], "R-0000", 1)
        top = await uow.rag.top_rules(SINCE, UNTIL, limit=2)
    assert [(t.rule_id, t.retrieved, t.used) for t in top] == [("R-0000", 3, 1), ("R-0001", 2, 2)]


@pytest.mark.parametrize("mode", MODES)
async def test_another_organizations_job_is_not_found(rag_store: Any, mode: str) -> None:
    org, wf = await new_org(rag_store)
    other, _ = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        await uow.rag.save(job, make_context(2))
    async with rag_store.unit(other, rag_mode=mode) as uow:
        with pytest.raises(NotFound):
            await uow.rag.get(job)
        assert await uow.rag.find(job) is None
        with pytest.raises(NotFound):
            await uow.rag.save(job, make_context(2))
        with pytest.raises(NotFound):
            await uow.rag.mark_rule_used(job, "R-0000", 1)
        assert (await uow.rag.rule_usage("R-0000", SINCE, UNTIL)).items == []
        assert await uow.rag.top_rules(SINCE, UNTIL) == []
    async with rag_store.unit(org, rag_mode=mode) as uow:
        with pytest.raises(NotFound):
            await uow.rag.get(uuid.uuid4())
        assert await uow.rag.find(uuid.uuid4()) is None


async def test_normalized_mode_at_head(store: Any, org: uuid.UUID) -> None:
    """After contract_rag_rules (the shared database is at head) the normalized mode works."""
    async with store.unit(org) as uow:
        wf = await uow.reference.add_workflow("wf")
        job = (await uow.jobs.create(workflow_id=wf.id)).id
        saved = await uow.rag.save(
            job, RagContext.model_validate({"rag_retrieval_time_ms": 5, "total_rules_retrieved": 0})
        )
    async with store.unit(org) as uow:
        assert await uow.rag.get(job) == saved


@pytest.mark.parametrize("mode", MODES)
async def test_usage_given_at_save_is_kept_and_counted_once(rag_store: Any, mode: str) -> None:
    org, wf = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    ctx = make_context(3)
    ctx["totalRulesUsed"] = 1
    ctx["rules"][1].update(
        wasUsed=True, usedAtStepIndex=2, usedAtTimestamp="2025-11-03T09:31:00.250Z", usageReason="r"
    )
    async with rag_store.unit(org, rag_mode=mode) as uow:
        saved = await uow.rag.save(job, ctx)
        assert saved.rules[1].used_at == WHEN.replace(minute=31, second=0, microsecond=250000)
        await uow.rag.mark_rule_used(job, "R-0001", 5, "again")  # already used: not counted
    async with rag_store.unit(org, rag_mode=mode) as uow:
        got = await uow.rag.get(job)
        assert got.total_rules_used == 1
        assert (got.rules[1].used_at_step_index, got.rules[1].usage_reason) == (5, "again")
        await uow.rag.mark_rule_used(job, "R-0002", 6)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        assert (await uow.rag.get(job)).total_rules_used == 2


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize("mode", ["dual_write_read_legacy", "dual_write_read_normalized"])
async def test_concurrent_marks_are_not_lost(rag_store: Any, mode: str) -> None:
    """Each mark reads, changes and writes the legacy JSON: the row lock serializes them."""
    import asyncio

    org, wf = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        await uow.rag.save(job, make_context(6))

    async def mark(position: int) -> None:
        async with rag_store.unit(org, rag_mode=mode) as uow:
            await uow.rag.mark_rule_used(job, position, position, f"step {position}")
            await asyncio.sleep(0.05)  # hold the transaction open while the others run

    await asyncio.gather(*(mark(p) for p in range(6)))
    for read in ("dual_write_read_legacy", "normalized"):
        async with rag_store.unit(org, rag_mode=read) as uow:
            got = await uow.rag.get(job)
        assert [r.was_used for r in got.rules] == [True] * 6, read
        assert got.total_rules_used == 6, read
