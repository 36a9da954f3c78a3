"""Per-organization catalogs: nobody reads another tenant's text; deleting one removes its text."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from execstore.rag import normalized
from execstore.rag.repository import as_context
from execstore.schema import models as m
from support.timeline import new_jobs, new_org

from .conftest import make_context


async def _catalog_rows(store: Any, org: Any) -> int:
    async with store.sessions() as session:
        total = 0
        for model in (m.RagRuleEntry, m.RagPayerEntry, m.RagModifierEntry):
            total += int(
                await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(model)
                    .where(model.organization_id == org)
                )
                or 0
            )
        return total


async def test_same_text_in_two_organizations_is_two_entries(store: Any) -> None:
    a, wf_a = await new_org(store)
    b, wf_b = await new_org(store)
    (job_a,) = await new_jobs(store, a, workflow=wf_a)
    (job_b,) = await new_jobs(store, b, workflow=wf_b)
    async with store.unit(a) as uow:
        await uow.rag.save(job_a, make_context(3))
    async with store.unit(b) as uow:
        await uow.rag.save(job_b, make_context(3))
    assert await _catalog_rows(store, a) == await _catalog_rows(store, b) == 3 + 2 + 2


async def test_deleting_an_organization_removes_only_its_catalog_text(store: Any) -> None:
    a, wf_a = await new_org(store)
    b, wf_b = await new_org(store)
    (job_a,) = await new_jobs(store, a, workflow=wf_a)
    (job_b,) = await new_jobs(store, b, workflow=wf_b)
    async with store.unit(a) as uow:
        await uow.rag.save(job_a, make_context(3, prefix="SHARED"))
    async with store.unit(b) as uow:
        saved_b = await uow.rag.save(job_b, make_context(3, prefix="SHARED"))
    async with store.unit(a) as uow:
        await uow.jobs.delete(job_a)
    async with store.sessions() as session, session.begin():
        await session.execute(sa.delete(m.Workflow).where(m.Workflow.organization_id == a))
        await session.execute(sa.delete(m.Organization).where(m.Organization.id == a))
    assert await _catalog_rows(store, a) == 0
    async with store.unit(b) as uow:
        assert await uow.rag.get(job_b) == saved_b  # b's copy of the same text is intact


async def test_the_insert_itself_refuses_another_organizations_job(store: Any) -> None:
    """``normalized.insert`` checks the owner in its own statement, whatever the caller read."""
    a, wf_a = await new_org(store)
    b, _ = await new_org(store)
    (job,) = await new_jobs(store, a, workflow=wf_a)
    async with store.sessions() as session:
        assert not await normalized.insert(session, b, job, as_context(make_context(2)))
        stored = await session.scalar(
            sa.select(sa.func.count())
            .select_from(m.ExecutionRagContext)
            .where(m.ExecutionRagContext.job_id == job)
        )
        assert stored == 0
        await session.rollback()
