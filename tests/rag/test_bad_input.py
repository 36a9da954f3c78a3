"""Bad input: each case has its documented outcome and leaves nothing half-written."""

from __future__ import annotations

import math
from typing import Any

import pytest

from execstore.errors import InvalidArgument, InvalidRagContext, NotFound
from execstore.textlimits import TRUNCATION_MARKER
from support.timeline import new_jobs, new_org

from .conftest import MODES, count_rows, make_context

TABLES = (
    "execution_rag_context",
    "rag_rule_catalog",
    "rag_payer_catalog",
    "rag_modifier_catalog",
    "execution_rag_rules_legacy",
)


async def _counts(store: Any) -> dict[str, int]:
    return {t: await count_rows(store, t) for t in TABLES}


def _with_rule(**changes: Any) -> dict[str, Any]:
    ctx = make_context(3)
    ctx["rules"][1] = {**ctx["rules"][1], **changes}
    return ctx


BAD = {
    "missing condition": _with_rule(condition=None),
    "missing rule type": {
        **make_context(1),
        "rules": [{"ruleId": "x", "condition": "c", "action": "a"}],
    },
    "missing payer id": {**make_context(1), "payers": [{"payerName": "Aetna", "scenario": "s"}]},
    "missing totals": {k: v for k, v in make_context(1).items() if k != "totalRulesRetrieved"},
    "score above 1": _with_rule(retrievalScore=1.2),
    "negative score": _with_rule(retrievalScore=-0.01),
    "NaN score": _with_rule(retrievalScore=math.nan),
    "average above 1": {**make_context(1), "averageRetrievalScore": 3},
    "the same rule twice": _with_rule(ruleId="R-0000"),
    "rules not a list": {**make_context(1), "rules": {"ruleId": "x"}},
    "a lone surrogate in a condition": _with_rule(condition="when \ud800"),
    "a lone surrogate in a rule id": _with_rule(ruleId="R-\udfff"),
    "a lone surrogate in a payer": {
        **make_context(1),
        "payers": [{"payerName": "\ud83d", "payerId": "P", "scenario": "s"}],
    },
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(BAD))
async def test_bad_input_is_a_typed_error_and_writes_nothing(
    rag_store: Any, mode: str, case: str
) -> None:
    org, wf = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    before = await _counts(rag_store)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        with pytest.raises(InvalidRagContext):
            await uow.rag.save(job, BAD[case])
        assert await uow.rag.find(job) is None
    assert await _counts(rag_store) == before


@pytest.mark.parametrize("mode", MODES)
async def test_oversized_text_and_nul_are_fitted_unicode_kept(rag_store: Any, mode: str) -> None:
    org, wf = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    ctx = make_context(2)
    ctx["rules"][0]["condition"] = "é✓\x00" + "x" * 5000
    ctx["rules"][1]["action"] = "emoji 🧾 and NUL\x00 inside"
    ctx["payers"][0]["payerName"] = "P" * 300
    async with rag_store.unit(org, rag_mode=mode) as uow:
        saved = await uow.rag.save(job, ctx)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        got = await uow.rag.get(job)
    assert got == saved
    condition = got.rules[0].condition
    assert len(condition) == 1000
    assert condition.startswith("é✓x")
    assert condition.endswith(TRUNCATION_MARKER)
    assert got.rules[1].action == "emoji 🧾 and NUL inside"
    assert len(got.payers[0].payer_name) == 200


async def test_fitted_text_shares_one_catalog_entry(rag_store: Any) -> None:
    """Text is fitted before hashing: two over-long variants with the same kept prefix are one."""
    org, wf = await new_org(rag_store)
    jobs = await new_jobs(rag_store, org, 2, workflow=wf)
    before = await count_rows(rag_store, "rag_rule_catalog")
    async with rag_store.unit(org) as uow:
        for tail, job in zip(("a" * 50, "b" * 80), jobs, strict=True):
            ctx = make_context(1)
            ctx["rules"][0]["condition"] = "y" * 1200 + tail
            await uow.rag.save(job, ctx)
    assert await count_rows(rag_store, "rag_rule_catalog") == before + 1


@pytest.mark.parametrize("mode", MODES)
async def test_an_empty_context_round_trips(rag_store: Any, mode: str) -> None:
    org, wf = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    empty = {"ragRetrievalTimeMs": 0, "totalRulesRetrieved": 0}
    async with rag_store.unit(org, rag_mode=mode) as uow:
        saved = await uow.rag.save(job, empty)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        got = await uow.rag.get(job)
    assert got == saved
    assert (got.rules, got.payers, got.modifiers, got.average_retrieval_score) == ([], [], [], None)


@pytest.mark.parametrize("mode", MODES)
async def test_a_context_for_another_organizations_job_writes_nothing(
    rag_store: Any, mode: str
) -> None:
    org, wf = await new_org(rag_store)
    thief, _ = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    before = await _counts(rag_store)
    async with rag_store.unit(thief, rag_mode=mode) as uow:
        with pytest.raises(NotFound):
            await uow.rag.save(job, make_context(3, prefix="NEW"))
    assert await _counts(rag_store) == before


async def test_a_failed_dual_write_leaves_neither_side(
    rag_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The legacy insert fails after the normalized one: the unit goes on with neither."""
    from execstore.rag import legacy_store

    org, wf = await new_org(rag_store)
    jobs = await new_jobs(rag_store, org, 2, workflow=wf)

    async def broken(*args: Any) -> str:
        raise RuntimeError("legacy insert failed")

    before = await _counts(rag_store)
    async with rag_store.unit(org, rag_mode="dual_write_read_normalized") as uow:
        with monkeypatch.context() as patch:
            patch.setattr(legacy_store, "insert", broken)
            with pytest.raises(RuntimeError):
                await uow.rag.save(jobs[0], make_context(2, prefix="HALF"))
        await uow.rag.save(jobs[1], make_context(1, prefix="OK"))  # the unit goes on
    after = await _counts(rag_store)
    assert after["execution_rag_context"] == before["execution_rag_context"] + 1
    assert after["execution_rag_rules_legacy"] == before["execution_rag_rules_legacy"] + 1
    assert after["rag_rule_catalog"] == before["rag_rule_catalog"] + 1  # no HALF-* rules
    async with rag_store.unit(org, rag_mode="dual_write_read_normalized") as uow:
        assert await uow.rag.find(jobs[0]) is None


@pytest.mark.parametrize("mode", MODES)
async def test_a_usage_reason_is_fitted_and_a_bad_step_refused(rag_store: Any, mode: str) -> None:
    org, wf = await new_org(rag_store)
    (job,) = await new_jobs(rag_store, org, workflow=wf)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        await uow.rag.save(job, make_context(2))
        marked = await uow.rag.mark_rule_used(job, 0, 3, "why " * 200)
        with pytest.raises(InvalidArgument, match="step_index must be an integer or None"):
            await uow.rag.mark_rule_used(job, 1, "third", "no")  # type: ignore[arg-type]
        with pytest.raises(InvalidRagContext, match="used_at_step_index"):
            await uow.rag.mark_rule_used(job, 1, 2**40, "no")
        with pytest.raises(InvalidArgument, match="reason holds a surrogate"):
            await uow.rag.mark_rule_used(job, 1, 4, "lone \ud800")
    async with rag_store.unit(org, rag_mode=mode) as uow:
        got = await uow.rag.get(job)
    assert got.rules[0] == marked
    assert len(marked.usage_reason or "") == 500
    assert (marked.usage_reason or "").endswith(TRUNCATION_MARKER)
    assert not got.rules[1].was_used
    assert got.total_rules_used == 1
