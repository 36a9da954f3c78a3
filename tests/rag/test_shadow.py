"""dual_write_read_normalized: sampled shadow reads, counted across processes, never failing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.config import load_settings
from execstore.schema.rag import execution_rag_rules_legacy as legacy_table
from execstore.store import ExecStore
from support.timeline import new_jobs, new_org

from .conftest import make_context

MODE = "dual_write_read_normalized"


async def _open(url: str, tmp_path: Path, rate: float) -> Any:
    settings = load_settings(
        database_url=url, blob_url=f"file:{tmp_path}", rag_shadow_sample_rate=rate
    )
    return ExecStore.open(settings)


async def test_a_mismatch_is_logged_and_counted_and_the_read_returns_normalized(
    rag_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with await _open(rag_url, tmp_path, 1.0) as store:
        org, wf = await new_org(store)
        jobs = await new_jobs(store, org, 2, workflow=wf)
        async with store.unit(org, rag_mode=MODE) as uow:
            saved = await uow.rag.save(jobs[0], make_context(3))
            await uow.rag.save(jobs[1], make_context(2))
        # Someone edits the legacy row behind execstore's back.
        async with store.sessions() as session, session.begin():
            await session.execute(
                sa.update(legacy_table)
                .where(legacy_table.c.job_id == str(jobs[0]))
                .values(total_rules_used=99)
            )
        before = await store.rag_shadow_stats()
        with caplog.at_level(logging.WARNING, logger="execstore.rag"):
            async with store.unit(org, rag_mode=MODE) as uow:
                assert await uow.rag.get(jobs[0]) == saved  # normalized wins, no error
                await uow.rag.get(jobs[1])  # equal: compared, no mismatch
        assert any("total_rules_used" in r.getMessage() for r in caplog.records)
    # Another store (as another process would) reads the same counters.
    async with await _open(rag_url, tmp_path, 0.0) as other:
        after = await other.rag_shadow_stats()
    assert after.compared - before.compared == 2
    assert after.mismatches - before.mismatches == 1
    assert after.failures == before.failures


async def test_a_failing_shadow_read_is_counted_not_raised(
    rag_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execstore.rag import legacy_store

    async with await _open(rag_url, tmp_path, 1.0) as store:
        org, wf = await new_org(store)
        (job,) = await new_jobs(store, org, workflow=wf)
        async with store.unit(org, rag_mode=MODE) as uow:
            saved = await uow.rag.save(job, make_context(2))
        before = await store.rag_shadow_stats()

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("legacy side down")

        monkeypatch.setattr(legacy_store, "find", broken)
        async with store.unit(org, rag_mode=MODE) as uow:
            assert await uow.rag.get(job) == saved
        after = await store.rag_shadow_stats()
    assert (after.compared - before.compared, after.failures - before.failures) == (1, 1)
    assert after.mismatches == before.mismatches


async def test_the_sample_rate_limits_shadow_reads(rag_url: str, tmp_path: Path) -> None:
    async with await _open(rag_url, tmp_path, 0.0) as store:
        org, wf = await new_org(store)
        (job,) = await new_jobs(store, org, workflow=wf)
        async with store.unit(org, rag_mode=MODE) as uow:
            await uow.rag.save(job, make_context(2))
        before = await store.rag_shadow_stats()
        async with store.unit(org, rag_mode=MODE) as uow:
            for _ in range(5):
                await uow.rag.get(job)
        assert await store.rag_shadow_stats() == before
