"""The RAG switch-over, every mode against every side a context can be on.

README, "RAG context": ``legacy`` writes and reads the legacy JSON table only;
``dual_write_read_legacy`` writes both sides and reads legacy; ``dual_write_read_normalized``
writes both and reads normalized (a sample compared with legacy); ``normalized`` uses the
normalized tables only. ``save`` is write-once: equal again is a no-op, different is
Conflict. A ``legacy``-mode write un-verifies its row for the backfill. After
``contract_rag_rules`` the legacy and dual modes are refused (ConfigurationError).

A job's context can be on one side only: saved before the dual-write deploy (legacy only,
not backfilled yet) or saved in ``normalized`` mode before a switch back. Each mode is
tried on jobs whose context is on the legacy side only, the normalized side only, both,
and neither.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.config import load_settings
from execstore.errors import ConfigurationError, Conflict, InvalidRagContext, NotFound
from execstore.rag import legacy_store, normalized
from execstore.rag.repository import as_context
from execstore.rag.types import RagContext
from execstore.schema.rag import execution_rag_rules_legacy as legacy_table
from execstore.schema.rag import rag_backfill_verified as verified_table
from execstore.store import ExecStore
from support.timeline import new_jobs, new_org

from .conftest import MODES, make_context

A = as_context(make_context(3, prefix="A"))
B = as_context(make_context(2, prefix="B"))
READS_LEGACY = {"legacy", "dual_write_read_legacy"}
WRITES_LEGACY = {"legacy", "dual_write_read_legacy", "dual_write_read_normalized"}
WRITES_NORMALIZED = {"dual_write_read_legacy", "dual_write_read_normalized", "normalized"}
SIDES = ("legacy", "normalized", "both", "neither")


async def place(store: Any, org: uuid.UUID, job: uuid.UUID, side: str, ctx: RagContext) -> None:
    """Put ``ctx`` on ``side`` of the job directly, as an earlier deployment would have."""
    async with store.sessions() as session, session.begin():
        if side in ("legacy", "both"):
            await legacy_store.insert(session, org, job, ctx)
        if side in ("normalized", "both"):
            assert await normalized.insert(session, org, job, ctx)


async def sides_of(store: Any, org: uuid.UUID, job: uuid.UUID) -> dict[str, Any]:
    """What each side holds for the job (None where it holds nothing)."""
    async with store.sessions() as session:
        row = await legacy_store.find(session, org, job)
        return {
            "legacy": None if row is None else row.context,
            "normalized": await normalized.fetch(session, org, job),
        }


async def jobs_on_every_side(store: Any, ctx: RagContext) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    org, wf = await new_org(store)
    jobs = dict(zip(SIDES, await new_jobs(store, org, len(SIDES), workflow=wf), strict=True))
    for side, job in jobs.items():
        if side != "neither":
            await place(store, org, job, side, ctx)
    return org, jobs


@pytest.mark.parametrize("mode", MODES)
async def test_each_mode_reads_its_side_and_writes_its_sides(rag_store: Any, mode: str) -> None:
    org, jobs = await jobs_on_every_side(rag_store, A)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        got = {side: await uow.rag.find(job) for side, job in jobs.items()}
    reads = "legacy" if mode in READS_LEGACY else "normalized"
    assert got == {
        "legacy": A if reads == "legacy" else None,
        "normalized": A if reads == "normalized" else None,
        "both": A,
        "neither": None,
    }
    # A new context goes to exactly the sides the mode writes.
    async with rag_store.unit(org, rag_mode=mode) as uow:
        await uow.rag.save(jobs["neither"], B)
    assert await sides_of(rag_store, org, jobs["neither"]) == {
        "legacy": B if mode in WRITES_LEGACY else None,
        "normalized": B if mode in WRITES_NORMALIZED else None,
    }


def _save_outcome(mode: str, side: str, same: bool) -> str:
    """What saving (the same or a different context) does where ``side`` already holds one.

    Returns ``noop``, ``conflict`` or ``written`` (the mode's sides that were empty are
    written). A mode that reads one side and writes only it (``legacy``, ``normalized``)
    cannot know the other side: it writes its own side if that is empty. A dual mode
    writes both sides, so a context on either side is the job's context.
    """
    own = "legacy" if mode == "legacy" else "normalized" if mode == "normalized" else None
    present = {"legacy", "normalized"} if side == "both" else {side} - {"neither"}
    if own is not None:
        present &= {own}
    if not present:
        return "written"
    return "noop" if same else "conflict"


@pytest.mark.parametrize("mode", MODES)
async def test_save_is_write_once_whichever_side_holds_the_context(
    rag_store: Any, mode: str
) -> None:
    for same in (True, False):
        org, jobs = await jobs_on_every_side(rag_store, A)
        before = {side: await sides_of(rag_store, org, job) for side, job in jobs.items()}
        for side, job in jobs.items():
            outcome = _save_outcome(mode, side, same)
            given = A if same else B
            # The unit commits after a refusal: a half-written dual write would stay.
            async with rag_store.unit(org, rag_mode=mode) as uow:
                if outcome == "conflict":
                    with pytest.raises(Conflict, match="different RAG context"):
                        await uow.rag.save(job, given)
                else:
                    assert await uow.rag.save(job, given) == (A if outcome == "noop" else given)
            after = await sides_of(rag_store, org, job)
            if outcome == "written":
                expected = dict(before[side])
                for name, writes in (("legacy", WRITES_LEGACY), ("normalized", WRITES_NORMALIZED)):
                    if mode in writes and expected[name] is None:
                        expected[name] = given
                assert after == expected, (mode, side, same)
            else:
                assert after == before[side], (mode, side, same, outcome)


async def _verified(store: Any, org: uuid.UUID, job: uuid.UUID) -> bool:
    async with store.sessions() as session:
        found = await session.scalar(
            sa.select(sa.func.count())
            .select_from(
                verified_table.join(legacy_table, legacy_table.c.id == verified_table.c.legacy_id)
            )
            .where(legacy_table.c.job_id == str(job))
        )
    return bool(found)


@pytest.mark.parametrize("mode", MODES)
async def test_marking_a_rule_updates_the_modes_sides_and_only_legacy_unverifies(
    rag_store: Any, mode: str
) -> None:
    org, jobs = await jobs_on_every_side(rag_store, A)
    both = jobs["both"]
    async with rag_store.sessions() as session, session.begin():
        row = await legacy_store.find(session, org, both)
        assert row is not None
        await session.execute(
            sa.insert(verified_table).values(legacy_id=row.id, verified_at=A.retrieved_at)
        )
    async with rag_store.unit(org, rag_mode=mode) as uow:
        marked = await uow.rag.mark_rule_used(both, "A-0001", step_index=4, reason="why")
    sides = await sides_of(rag_store, org, both)
    for name, writes in (("legacy", WRITES_LEGACY), ("normalized", WRITES_NORMALIZED)):
        rules = sides[name].rules
        assert rules[1] == (marked if mode in writes else A.rules[1]), (mode, name)
        assert sides[name].total_rules_used == (1 if mode in writes else 0), (mode, name)
    assert await _verified(rag_store, org, both) is (mode != "legacy")
    # A side the mode reads but that holds nothing: NotFound, and nothing changes anywhere.
    empty = "normalized" if mode in READS_LEGACY else "legacy"
    lonely = jobs[empty]  # the context is on the side the mode does not read
    before = await sides_of(rag_store, org, lonely)
    for job, message in ((lonely, "has no RAG context"), (jobs["neither"], "has no RAG context")):
        async with rag_store.unit(org, rag_mode=mode) as uow:
            with pytest.raises(NotFound, match=message):
                await uow.rag.mark_rule_used(job, 0)
    assert await sides_of(rag_store, org, lonely) == before


async def _open(url: str, tmp_path: Path, rate: float = 1.0) -> Any:
    settings = load_settings(
        database_url=url, blob_url=f"file:{tmp_path}", rag_shadow_sample_rate=rate
    )
    return ExecStore.open(settings)


async def test_shadow_reads_count_a_missing_side_as_a_mismatch(
    rag_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with await _open(rag_url, tmp_path) as store:
        org, jobs = await jobs_on_every_side(store, A)
        expected = {"legacy": None, "normalized": A, "both": A, "neither": None}
        mismatched = {"legacy": "normalized missing", "normalized": "legacy missing"}
        for side, job in jobs.items():
            before = await store.rag_shadow_stats()
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="execstore.rag"):
                async with store.unit(org, rag_mode="dual_write_read_normalized") as uow:
                    assert await uow.rag.find(job) == expected[side], side
            after = await store.rag_shadow_stats()
            assert (after.compared - before.compared, after.failures - before.failures) == (1, 0)
            assert after.mismatches - before.mismatches == (side in mismatched), side
            warned = [r.getMessage() for r in caplog.records]
            if side in mismatched:
                assert any(mismatched[side] in text and str(job) in text for text in warned)
            else:
                assert warned == [], side


async def test_modes_that_need_the_legacy_table_are_refused_after_the_contract(
    store: Any, rag_url: str, settings: Any, tmp_path: Path
) -> None:
    """``store`` is at head (contract_rag_rules ran); ``rag_url`` is just below it."""
    org = uuid.uuid4()
    for mode in MODES:
        at_head = load_settings(
            database_url=settings.database_url, blob_url=settings.blob_url, rag_mode=mode
        )
        before = load_settings(database_url=rag_url, blob_url=f"file:{tmp_path}", rag_mode=mode)
        if mode != "normalized":
            with pytest.raises(ConfigurationError, match="contract_rag_rules"):
                async with store.unit(org, rag_mode=mode):
                    raise AssertionError("refused before the block")
            with pytest.raises(ConfigurationError, match=f"EXECSTORE_RAG_MODE={mode}"):
                async with ExecStore.open(at_head):
                    raise AssertionError("refused at open")
        else:
            async with ExecStore.open(at_head) as opened, opened.unit(org) as uow:
                assert uow.rag.mode.value == mode
        # Before the contract step every mode opens, and runs a unit in every mode.
        async with ExecStore.open(before) as early:
            for other in MODES:
                async with early.unit(org, rag_mode=other) as uow:
                    assert uow.rag.mode.value == other


async def test_a_legacy_row_that_is_not_a_context_is_a_typed_error_in_every_mode(
    rag_store: Any,
) -> None:
    """The backfill sets such rows aside; a read that meets one says so as an
    InvalidRagContext naming the row (never pydantic's own error), and changes nothing."""
    org, jobs = await jobs_on_every_side(rag_store, A)
    job = jobs["both"]
    async with rag_store.sessions() as session, session.begin():
        await session.execute(
            sa.update(legacy_table)
            .where(legacy_table.c.job_id == str(job))
            .values(payers=[{"name": "no payerName, payerId or scenario"}])
        )
        raw = (await session.execute(sa.select(legacy_table))).all()
    for mode in MODES:
        for name, call in (
            ("get", lambda uow: uow.rag.get(job)),
            ("save", lambda uow: uow.rag.save(job, A)),
            ("mark", lambda uow: uow.rag.mark_rule_used(job, 0, step_index=1)),
        ):
            # A dual write's mark rewrites the legacy row too, so it reads it.
            reads_legacy = mode in READS_LEGACY or (mode in WRITES_LEGACY and name == "mark")
            async with rag_store.unit(org, rag_mode=mode) as uow:
                if reads_legacy:
                    with pytest.raises(InvalidRagContext, match="is not a RAG context"):
                        await call(uow)
                elif name == "mark":
                    await uow.rag.mark_rule_used(job, 0, step_index=1)
                else:
                    assert await call(uow) == A
    async with rag_store.sessions() as session:
        assert (await session.execute(sa.select(legacy_table))).all() == raw
        marked = await normalized.fetch(session, org, job)
    assert marked is not None
    assert marked.rules[0].used_at_step_index == 1  # only the normalized mode's mark
