"""RAG retrieval and use times come from the store's clock, and rule_usage sees them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from execstore.clock import ManualClock
from execstore.errors import Conflict
from execstore.rag.types import millis
from support.timeline import new_job, new_org

from .conftest import DIRECTIONS, pinned

MS = dt.timedelta(milliseconds=1)
CONTEXT = {
    "ragRetrievalTimeMs": 12,
    "totalRulesRetrieved": 2,
    "rules": [
        {"ruleId": "R-1", "ruleType": "billing", "condition": "E/M", "action": "append 25"},
        {"ruleId": "R-2", "ruleType": "billing", "condition": "PT", "action": "append GP"},
    ],
}


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_rule_usage_reports_the_clocks_times(open_store: Any, direction: str) -> None:
    retrieved = pinned(
        direction,
        dt.datetime(2046, 1, 2, 3, 4, 5, 678_901, tzinfo=dt.UTC),
        dt.datetime(2016, 1, 2, 3, 4, 5, 678_901, tzinfo=dt.UTC),
    )
    at = millis(retrieved)
    assert at is not None
    clock = ManualClock(retrieved)
    async with open_store(clock) as store:
        org, workflow = await new_org(store)
        job = await new_job(store, org, workflow)
        async with store.unit(org) as uow:
            saved = await uow.rag.save(job, CONTEXT)
        assert saved.retrieved_at == at
        clock.advance(minutes=3)
        used = millis(clock.now())
        async with store.unit(org) as uow:
            # Saved again without a time, later: the same context (a retried save).
            assert await uow.rag.save(job, CONTEXT) == saved
            with pytest.raises(Conflict):
                await uow.rag.save(job, {**CONTEXT, "retrievedAt": used})
            await uow.rag.mark_rule_used(job, "R-2", step_index=3)
            page = await uow.rag.rule_usage("R-2", at, at + MS)
            before = await uow.rag.rule_usage("R-2", at - MS, at)
        [use] = page.items
        assert (use.job_id, use.retrieved_at, use.was_used, use.used_at) == (job, at, True, used)
        assert before.items == []
