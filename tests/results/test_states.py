"""A job's result in each of its states, every operation on it, and legacy screenshot rows
against the JSON's screenshots with either side missing (both backends).

States (README, "Job results"): no result (``jobs.result`` NULL), a legacy result (the
whole output in ``jobs.result``), archived (summary + pointer row + blob), lost (the
reconciler marked the blob missing). ``save`` is write-once: the same output again is a
no-op, a different one Conflict, nothing written either way. Archiving a legacy result
adds legacy screenshot rows the JSON does not list under ``legacyScreenshotRows``; an
output that already has that key and such rows is set aside, left as it was.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.archival import reconcile
from execstore.errors import ArchiveMissing, Conflict, ExecstoreError, NotFound
from execstore.results import ResultArchives, backfill_results
from execstore.schema import models as m
from support.timeline import new_jobs

from .conftest import BASE

SHOT = f"{BASE}x/in-json.png"
ROW = f"{BASE}x/legacy-row.png"
NO_GRACE = dt.timedelta(0)


def output(shots: Any = ..., **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"success": True, "stepResults": [{"stepIndex": 0}], **extra}
    if shots is not ...:
        found["screenshots"] = shots
    return found


async def make_legacy(store: Any, job: uuid.UUID, result: Any, rows: list[str]) -> None:
    """Give ``job`` a legacy result and legacy screenshot rows with these URLs."""
    async with store.sessions() as session, session.begin():
        await session.execute(sa.update(m.Job).where(m.Job.id == job).values(result=result))
        for i, url in enumerate(rows):
            await session.execute(
                sa.insert(m.execution_screenshots_legacy).values(
                    id=f"{job}-{i}",
                    job_id=str(job).upper(),  # any legacy spelling of the id
                    step_index=i,
                    url=url,
                    width=640,
                    height=480,
                    captured_at=dt.datetime(2024, 5, 3, 15, i),
                )
            )


async def stored(store: Any, job: uuid.UUID) -> tuple[Any, int, int, int]:
    """The job's result, its legacy and slim screenshot rows and pointer rows (counts)."""
    async with store.sessions() as session:
        result = await session.scalar(
            sa.select(sa.cast(m.Job.result, sa.Text)).where(m.Job.id == job)
        )

        async def count(table: Any, column: Any, value: Any) -> int:
            return int(
                await session.scalar(
                    sa.select(sa.func.count()).select_from(table).where(column == value)
                )
                or 0
            )

        legacy = m.execution_screenshots_legacy
        return (
            result,
            await count(legacy, legacy.c.job_id, str(job).upper()),
            await count(m.ExecutionScreenshot, m.ExecutionScreenshot.job_id, job),
            await count(m.JobResultArchive, m.JobResultArchive.job_id, job),
        )


ROW_RECORD = {
    "stepIndex": 0,
    "url": ROW,
    "width": 640,
    "height": 480,
    "capturedAt": "2024-05-03T15:00:00+00:00",
}
# name: (legacy output, legacy row URLs, archived output or None if set aside, screenshot URLs)
CASES: dict[str, tuple[Any, list[str], Any, list[str]]] = {
    "row without a JSON entry": (output(), [ROW], output(legacyScreenshotRows=[ROW_RECORD]), [ROW]),
    "row, JSON screenshots not a list": (
        output({"url": SHOT}),
        [ROW],
        output({"url": SHOT}, legacyScreenshotRows=[ROW_RECORD]),
        [ROW],
    ),
    "JSON entry without a row": (output([{"url": SHOT}]), [], output([{"url": SHOT}]), [SHOT]),
    "both, the same screenshot": (output([{"url": ROW}]), [ROW], output([{"url": ROW}]), [ROW]),
    "both, different screenshots": (
        output([{"url": SHOT}]),
        [ROW],
        output([{"url": SHOT}], legacyScreenshotRows=[ROW_RECORD]),
        [SHOT, ROW],
    ),
    "neither": (output([]), [], output([]), []),
    "the key taken, no extra row": (
        output([{"url": ROW}], legacyScreenshotRows="the processor's own"),
        [ROW],
        output([{"url": ROW}], legacyScreenshotRows="the processor's own"),
        [ROW],
    ),
    "the key taken and an extra row": (output(legacyScreenshotRows=[]), [ROW], None, []),
}


async def test_legacy_screenshot_rows_against_the_json_with_either_side_missing(
    store: Any, org: uuid.UUID
) -> None:
    jobs = dict(zip(CASES, await new_jobs(store, org, len(CASES)), strict=True))
    for name, job in jobs.items():
        legacy, rows, _, _ = CASES[name]
        await make_legacy(store, job, legacy, rows)
    before = {job: await stored(store, job) for job in jobs.values()}
    report = await backfill_results(store.sessions, store.archives, organization_id=org)
    aside = {item.key: item.reason for item in report.set_aside}
    assert report.counts["moved"] == sum(1 for case in CASES.values() if case[2] is not None)
    async with store.unit(org) as uow:
        for name, job in jobs.items():
            legacy, rows, archived, urls = CASES[name]
            if archived is None:
                assert "legacyScreenshotRows" in aside[str(job)], name
                assert await stored(store, job) == before[job], name  # left exactly as it was
                continue
            assert str(job) not in aside, name
            detail = await uow.results.detail(job)
            rows_added = archived.get("legacyScreenshotRows")
            if isinstance(rows_added, list):  # each added row keeps its legacy id
                archived = {
                    **archived,
                    "legacyScreenshotRows": [{"id": f"{job}-0", **r} for r in rows_added],
                }
            assert detail.output == archived, name
            assert [s.url for s in await uow.results.screenshots(job)] == urls, name
            _, legacy_left, slim, pointers = await stored(store, job)
            assert (legacy_left, slim, pointers) == (0, len(urls), 1), name


STATES = ("none", "legacy", "archived", "lost")


async def job_in(store: Any, org: uuid.UUID, state: str) -> uuid.UUID:
    (job,) = await new_jobs(store, org, 1)
    if state == "legacy":
        await make_legacy(store, job, output([{"url": SHOT}]), [])
    elif state in ("archived", "lost"):
        async with store.unit(org) as uow:
            await uow.results.save(job, output([{"url": SHOT}]))
    if state == "lost":
        async with store.sessions() as session:
            archive = await session.get(m.JobResultArchive, job)
            owner = await session.get(m.Job, job)
        from execstore.results.format import ref_from_row

        assert archive is not None
        assert owner is not None
        key = ref_from_row(archive, organization_id=org, created_at=owner.created_at).key
        await store.blobs.delete(key)
        store.archives.cache.clear()
        await reconcile(
            store.sessions,
            store.archives,
            [ResultArchives()],
            organization_id=org,
            repair=True,
            grace=NO_GRACE,
        )
    return job


async def test_every_operation_on_a_result_in_every_state(store: Any, org: uuid.UUID) -> None:
    same, different = output([{"url": SHOT}]), output([], success=False)
    for state in STATES:
        job = await job_in(store, org, state)
        before = await stored(store, job)
        async with store.unit(org) as uow:
            summary = await uow.results.find(job)
            shots = [s.url for s in await uow.results.screenshots(job)]
            if state == "lost":
                with pytest.raises(ArchiveMissing):
                    await uow.results.detail(job)
            elif state == "none":
                with pytest.raises(NotFound, match="no result"):
                    await uow.results.detail(job)
            else:
                assert (await uow.results.detail(job)).output == same, state
        assert (summary is None) is (state == "none"), state
        if summary is not None:
            assert (summary.legacy, summary.archive_missing) == (state == "legacy", state == "lost")
        assert shots == ([] if state == "none" else [SHOT]), state

        # A different output: Conflict (ArchiveMissing while the blob to compare is lost).
        async with store.unit(org) as uow:  # committed: a half-written save would stay
            expected_error = ExecstoreError if state == "lost" else Conflict
            if state == "none":
                await uow.results.save(job, different)
            else:
                with pytest.raises(expected_error) as refused:
                    await uow.results.save(job, different)
                assert isinstance(refused.value, (Conflict, ArchiveMissing)), state
        if state != "none":
            assert await stored(store, job) == before, state
        # The same output again: a no-op in every state that has one.
        async with store.unit(org) as uow:
            again = await uow.results.save(job, different if state == "none" else same)
        assert (again.legacy, again.archive_missing) == (state == "legacy", state == "lost"), state
        if state != "none":
            assert await stored(store, job) == before, state
        # Archival acts on the legacy state only.
        report = await backfill_results(store.sessions, store.archives, organization_id=org)
        assert report.counts["moved"] == (state == "legacy"), state
        # Deleting the job works in every state and takes its rows and blob along.
        async with store.unit(org) as uow:
            keys = await uow.jobs.delete(job)
        assert len(keys) == 1, state  # by now every state has been archived once
        for key in keys:
            assert not await store.blobs.exists(key), state
