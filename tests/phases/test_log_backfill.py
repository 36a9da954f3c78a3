"""The log migration's phases, every call from every phase, and verification with a side
missing a line (both backends).

Phases (``execution_log_backfill.phase``): not started -> copying -> swapped -> verified.
README, "Online migration": ``execstore backfill logs`` copies, catches up, swaps and
verifies count and an order-free checksum per job before emptying the legacy table;
``--no-swap`` stops after copying; ``--dry-run`` says where the migration stands and
changes nothing; a mismatch is reported per job and nothing is deleted; after the swap
old writers are refused; archival waits until the migration is verified.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.logs import NewLogEntry
from execstore.logs.backfill import BackfillPhase, backfill_logs
from execstore.schema import legacy

from .legacy_world import JOBS, LINES_PER_JOB, expected, legacy_log_rows

TOTAL = LINES_PER_JOB * len(JOBS)


async def state_of(store: Any) -> dict[str, Any]:
    """Everything the log migration keeps: phase, legacy rows, moved lines, queue."""
    async with store.sessions() as session:

        async def rows(sql: str) -> list[Any]:
            return [tuple(r) for r in (await session.execute(sa.text(sql))).all()]

        phase = await session.scalar(sa.text("SELECT phase FROM execution_log_backfill"))
        return {
            "phase": BackfillPhase(phase or 0),
            "legacy": sorted(await rows("SELECT id, message, level FROM execution_log")),
            "moved": sorted(
                (str(job), message)
                for job, message in await rows(
                    "SELECT job_id, message FROM execution_log_partitioned WHERE id < 0"
                )
            ),
            "queue": await rows("SELECT op, legacy_id FROM execution_log_backfill_changes"),
        }


def mismatched(report: Any) -> list[str]:
    """The jobs the verification found different (set aside as ``job <id>``)."""
    return [a.key.removeprefix("job ") for a in report.set_aside if a.key.startswith("job ")]


async def backfill(store: Any, **options: Any) -> Any:
    return await backfill_logs(store.engine, store.sessions, clock=store.clock, **options)


async def archive(store: Any) -> Any:
    from execstore.logs import archive_logs

    return await archive_logs(
        store.engine, store.sessions, store.archives, hot_days=30, chunk_rows=5, clock=store.clock
    )


async def moved_line(store: Any, message: str) -> dict[str, Any]:
    async with store.sessions() as session:
        found = (
            (
                await session.execute(
                    sa.text("SELECT * FROM execution_log_partitioned WHERE message = :m"),
                    {"m": message},
                )
            )
            .mappings()
            .one()
        )
    return dict(found)


async def sql(store: Any, statement: str, **params: Any) -> int:
    async with store.engine.begin() as conn:
        return int((await conn.execute(sa.text(statement), params)).rowcount or 0)


async def test_every_call_from_every_phase(legacy_store: Any) -> None:
    store = legacy_store
    want = expected()
    cuid_job = want.jobs["cuid"]
    async with store.unit(want.org) as uow:  # a line of the new code, in September too
        await uow.logs.append(
            cuid_job,
            [NewLogEntry("new code line", timestamp=dt.datetime(2026, 9, 25, tzinfo=dt.UTC))],
        )

    # -- not started: a dry run changes nothing; archival is not held up ----------------
    start = await state_of(store)
    assert (start["phase"], len(start["legacy"]), start["moved"]) == (
        BackfillPhase.NOT_STARTED,
        TOTAL,
        [],
    )
    dry = await backfill(store, dry_run=True)
    assert (
        dry.details["phase"],
        dry.counts["legacy_rows"],
        dry.counts["moved"],
        dry.details["swapped"],
    ) == ("not_started", TOTAL, 0, False)
    assert await state_of(store) == start
    archived = await archive(store)
    assert (archived.details["waiting_for_backfill"], archived.counts["lines_archived"]) == (
        False,
        1,
    )

    # -- not started -> copying (--no-swap) ------------------------------------------------
    copying = await backfill(store, swap=False)
    assert (
        copying.details["phase"],
        copying.counts["moved"],
        copying.details["swapped"],
        copying.details["verified"],
    ) == (
        "copying",
        TOTAL,
        False,
        False,
    )
    state = await state_of(store)
    assert state["phase"] is BackfillPhase.COPYING
    assert state["legacy"] == start["legacy"]  # nothing leaves legacy before verification
    assert Counter(j for j, _ in state["moved"]) == {
        str(j): LINES_PER_JOB for j in want.jobs.values()
    }

    # -- copying: dry run and archival change nothing -------------------------------------
    assert (await backfill(store, dry_run=True)).details["phase"] == "copying"
    assert await state_of(store) == state
    held = await archive(store)
    assert (
        held.details["waiting_for_backfill"],
        held.counts["lines_archived"],
        held.details["partitions_detached"],
    ) == (
        True,
        0,
        [],
    )
    assert await state_of(store) == state

    # -- copying -> copying: rows written meanwhile (one behind the cursor) are copied ----
    late, ahead = (
        legacy_log_rows()[0]
        | {
            "id": "cklatebehind",
            "message": "late line",
            "timestamp": dt.datetime(2026, 9, 19, 7, 0),
        },
        legacy_log_rows()[-1]
        | {
            "id": "cklateahead",
            "message": "ahead line",
            "timestamp": dt.datetime(2026, 9, 30, 23, 0),
        },
    )
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(legacy.execution_log), [late, ahead])
    again = await backfill(store, swap=False)
    assert (again.details["phase"], again.counts["moved"]) == ("copying", 2)
    state = await state_of(store)
    assert (len(state["moved"]), len(state["legacy"])) == (TOTAL + 2, TOTAL + 2)

    # -- copying -> swapped, verification fails: one copy missing -----------------------
    gone = await moved_line(store, "upper line 2")
    assert (
        await sql(store, "DELETE FROM execution_log_partitioned WHERE message = 'upper line 2'")
        == 1
    )
    failed = await backfill(store)
    assert (failed.details["phase"], failed.details["swapped"], failed.details["verified"]) == (
        "swapped",
        True,
        False,
    )
    assert mismatched(failed) == [str(want.jobs["upper"])]
    assert failed.needs_attention
    assert failed.details["complete"] is False
    swapped = await state_of(store)
    assert swapped["phase"] is BackfillPhase.SWAPPED
    assert swapped["legacy"] == state["legacy"]  # nothing deleted
    # Old writers are refused from the swap on; archival still waits.
    with pytest.raises(Exception, match="execution_log is retired"):
        async with store.engine.begin() as conn:
            await conn.execute(sa.insert(legacy.execution_log).values(**late | {"id": "cknope"}))
    assert (await archive(store)).details["waiting_for_backfill"]
    assert (await backfill(store, dry_run=True)).details["phase"] == "swapped"
    assert await state_of(store) == swapped

    # -- swapped -> swapped: each side missing a line is a mismatch of that job only ------
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.insert(sa.table("execution_log_partitioned", *[sa.column(c) for c in gone])), [gone]
        )
    extra = gone | {"id": -1, "message": "never in legacy"}
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.insert(sa.table("execution_log_partitioned", *[sa.column(c) for c in extra])),
            [extra],
        )
    report = await backfill(store)
    assert (report.details["phase"], mismatched(report)) == ("swapped", [str(want.jobs["upper"])])
    assert report.counts["moved_checked"] == report.counts["legacy_checked"] + 1
    await sql(store, "DELETE FROM execution_log_partitioned WHERE id = -1")
    # Same totals, one line filed under another job: both jobs differ.
    plain = str(want.jobs["plain"])
    await sql(
        store,
        "UPDATE execution_log_partitioned SET job_id = :to WHERE message = 'braced line 1'",
        to=want.jobs["plain"] if store.engine.dialect.name == "postgresql" else plain,
    )
    report = await backfill(store)
    assert report.counts["legacy_checked"] == report.counts["moved_checked"]
    assert mismatched(report) == sorted([str(want.jobs["braced"]), plain])
    assert (await state_of(store))["legacy"] == state["legacy"]
    await sql(
        store,
        "UPDATE execution_log_partitioned SET job_id = :to WHERE message = 'braced line 1'",
        to=want.jobs["braced"]
        if store.engine.dialect.name == "postgresql"
        else str(want.jobs["braced"]),
    )

    # -- swapped -> verified: the legacy table empties, reads see every line once --------
    verified = await backfill(store)
    assert (verified.details["phase"], verified.details["verified"], mismatched(verified)) == (
        "verified",
        True,
        [],
    )
    assert verified.counts["legacy_rows_removed"] == TOTAL + 2
    assert (verified.counts["remaining"], verified.details["complete"]) == (0, True)
    assert str(verified.details["checksum"]).startswith(f"{TOTAL + 2}:")
    done = await state_of(store)
    assert (done["phase"], done["legacy"], done["queue"]) == (BackfillPhase.VERIFIED, [], [])
    assert done["moved"] == state["moved"]

    # -- verified: every call leaves it verified; archival goes ahead --------------------
    assert (await backfill(store, dry_run=True)).details["phase"] == "verified"
    rerun = await backfill(store, swap=False)
    assert (rerun.details["phase"], rerun.counts["moved"], rerun.counts["legacy_rows_removed"]) == (
        "verified",
        0,
        0,
    )
    assert await state_of(store) == done
    moved = await archive(store)
    assert (moved.details["waiting_for_backfill"], moved.counts["lines_archived"]) == (
        False,
        TOTAL + 2,
    )
    async with store.unit(want.org) as uow:
        page = await uow.logs.for_job(cuid_job, limit=50)
    assert [e.message for e in page.items] == [
        "late line",
        *want.messages[cuid_job],
        "new code line",
    ]


async def test_a_swap_from_not_started_verifies_in_one_run(legacy_store: Any) -> None:
    store = legacy_store
    report = await backfill(store)
    assert (
        report.details["phase"],
        report.counts["moved"],
        report.details["swapped"],
        report.details["verified"],
    ) == (
        "verified",
        TOTAL,
        True,
        True,
    )
    state = await state_of(store)
    assert (state["phase"], state["legacy"]) == (BackfillPhase.VERIFIED, [])
    assert len(state["moved"]) == TOTAL
