"""One not-found rule for every capability: ``get`` raises NotFound, ``find`` returns None.

"Not there" includes another organization's row: neither read tells the two apart.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from execstore.errors import NotFound
from support.timeline import new_job, new_org

CONTEXT = {
    "ragRetrievalTimeMs": 12,
    "totalRulesRetrieved": 1,
    "totalRulesUsed": 0,
    "averageRetrievalScore": 0.5,
    "rules": [{"ruleId": "R-1", "ruleType": "billing", "condition": "c", "action": "a"}],
}


def _reads(uow: Any) -> dict[str, tuple[Any, Any]]:
    """Each capability's (get, find) pair."""
    return {
        "jobs": (uow.jobs.get, uow.jobs.find),
        "metadata": (uow.metadata.get, uow.metadata.find),
        "results": (uow.results.get, uow.results.find),
        "rag": (uow.rag.get, uow.rag.find),
    }


async def _not_there(uow: Any, job: uuid.UUID, names: list[str]) -> None:
    for name in names:
        get, find = _reads(uow)[name]
        with pytest.raises(NotFound):
            await get(job)
        assert await find(job) is None, name


async def test_get_raises_and_find_returns_none_in_every_capability(store: Any) -> None:
    org, workflow = await new_org(store)
    other, _ = await new_org(store, "other")
    job = await new_job(store, org, workflow)
    async with store.unit(org) as uow:
        # The job is there; nothing else about it is yet.
        assert (await uow.jobs.find(job)) == await uow.jobs.get(job)
        await _not_there(uow, job, ["metadata", "results", "rag"])
        with pytest.raises(NotFound, match="no result"):
            await uow.results.detail(job)
        await _not_there(uow, uuid.uuid4(), ["jobs", "metadata", "results", "rag"])
    async with store.unit(org) as uow:
        await uow.metadata.create(job, total_steps=1)
        await uow.results.save(job, {"success": True, "stepResults": []})
        await uow.rag.save(job, CONTEXT)
    async with store.unit(org) as uow:
        for name, (get, find) in _reads(uow).items():
            assert await find(job) == await get(job), name
        assert (await uow.results.detail(job)).output["success"] is True
    async with store.unit(other) as uow:  # another organization's job is not there
        await _not_there(uow, job, ["jobs", "metadata", "results", "rag"])
        with pytest.raises(NotFound):
            await uow.results.detail(job)
        with pytest.raises(NotFound):
            await uow.logs.for_job(job)
        with pytest.raises(NotFound):
            await uow.logs.tail(job)
