"""The archival job for legacy results, on both backends."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.results import ScreenshotUrls, backfill_results, count_remaining
from execstore.schema import models as m
from support.timeline import new_jobs

from .conftest import BASE, make_output, result_blobs, results_of

URLS = ScreenshotUrls(BASE)


async def make_legacy_jobs(
    store: Any, org: uuid.UUID, count: int, *, legacy_rows: int = 0
) -> dict[uuid.UUID, dict[str, Any]]:
    """``count`` jobs whose ``result`` holds the full legacy output (plus legacy rows)."""
    ids = await new_jobs(store, org, count)
    outputs = {job: make_output(org, job, steps=5, shots=3) for job in ids}
    async with store.sessions() as session, session.begin():
        for job, output in outputs.items():
            await session.execute(sa.update(m.Job).where(m.Job.id == job).values(result=output))
            for i in range(legacy_rows):
                await session.execute(
                    sa.insert(m.execution_screenshots_legacy).values(
                        id=str(uuid.uuid4()),
                        job_id=str(job),
                        step_index=i,
                        url=f"{BASE}{org}/{job}/legacy-{i}.png",
                        width=800,
                        height=600,
                        captured_at=dt.datetime(2024, 5, 3, 15, i),
                    )
                )
    return outputs


async def legacy_left(store: Any, org: uuid.UUID) -> int:
    """Jobs of ``org`` whose result is not a summary (read as text: some do not decode)."""
    async with store.sessions() as session:
        texts = (
            await session.scalars(
                sa.select(sa.cast(m.Job.result, sa.Text)).where(
                    m.Job.organization_id == org, m.Job.result.is_not(None)
                )
            )
        ).all()

    def is_summary(text: str) -> bool:
        try:
            return json.loads(text).get("_v") == 1
        except ValueError:
            return False

    return sum(1 for text in texts if not is_summary(text))


async def test_dry_run_reports_without_writing(store: Any, org: uuid.UUID) -> None:
    await make_legacy_jobs(store, org, 3, legacy_rows=1)
    report = await backfill_results(
        store.sessions, store.archives, organization_id=org, dry_run=True, screenshot_urls=URLS
    )
    assert report.dry_run
    assert report.counts["moved"] == 3
    assert report.counts["bytes_before"] > report.counts["bytes_after"] > 0
    assert (report.counts["remaining"], report.details["complete"]) == (3, False)
    assert await legacy_left(store, org) == 3
    assert await result_blobs(store) == []


async def test_archives_legacy_results_in_batches(store: Any, org: uuid.UUID) -> None:
    outputs = await make_legacy_jobs(store, org, 5, legacy_rows=2)
    assert await count_remaining(store.sessions, organization_id=org) == 5
    seen: list[tuple[int, int | None]] = []
    report = await backfill_results(
        store.sessions,
        store.archives,
        organization_id=org,
        batch_size=2,
        screenshot_urls=URLS,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert report.counts["moved"] == 5
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert report.counts["bytes_after"] < report.counts["bytes_before"]
    assert await legacy_left(store, org) == 0
    async with store.sessions() as session:
        left = await session.scalar(
            sa.select(sa.func.count())
            .select_from(m.execution_screenshots_legacy)
            .where(m.execution_screenshots_legacy.c.job_id.in_([str(j) for j in outputs]))
        )
    assert left == 0
    for job, output in outputs.items():
        async with store.unit(org) as uow:
            repo = results_of(uow)
            summary = await repo.find(job)
            detail = await repo.detail(job)
            shots = await repo.screenshots(job)
        assert summary is not None
        assert summary.archived
        assert summary.screenshot_count == 5
        extra = detail.output.pop("legacyScreenshotRows")
        assert detail.output == output
        assert [row["url"] for row in extra] == [
            f"{BASE}{org}/{job}/legacy-{i}.png" for i in range(2)
        ]
        assert [s.url for s in shots] == [s["url"] for s in output["screenshots"]] + [
            r["url"] for r in extra
        ]


async def test_rerun_finds_nothing_and_limit_is_honoured(store: Any, org: uuid.UUID) -> None:
    await make_legacy_jobs(store, org, 3)
    await backfill_results(
        store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
    )
    await make_legacy_jobs(store, org, 3)
    first = await backfill_results(
        store.sessions, store.archives, organization_id=org, limit=2, screenshot_urls=URLS
    )
    assert first.counts["moved"] == 2
    assert await legacy_left(store, org) == 1
    rest = await backfill_results(
        store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
    )
    assert rest.counts["moved"] == 1
    assert await legacy_left(store, org) == 0
    again = await backfill_results(
        store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
    )
    assert again.counts["moved"] == 0


async def test_legacy_result_reads_before_archival_and_save_is_write_once(
    store: Any, org: uuid.UUID
) -> None:
    outputs = await make_legacy_jobs(store, org, 1)
    ((job, output),) = outputs.items()
    async with store.unit(org) as uow:
        repo = results_of(uow)
        summary = await repo.find(job)
        detail = await repo.detail(job)
        shots = await repo.screenshots(job)
        again = await repo.save(job, output)  # identical: fine, nothing changes
    assert summary is not None
    assert summary.legacy
    assert summary.total_steps == 5
    assert detail.output == output
    assert [s.url for s in shots] == [s["url"] for s in output["screenshots"]]
    assert again.legacy


@pytest.mark.parametrize("workers", [3])
async def test_parallel_workers_archive_each_job_once(
    store: Any, org: uuid.UUID, backend: str, workers: int
) -> None:
    if backend == "sqlite":
        workers = 1  # one writer: documented; parallel workers would only wait on the lock
    import asyncio

    await make_legacy_jobs(store, org, 12)
    reports = await asyncio.gather(
        *(
            backfill_results(
                store.sessions,
                store.archives,
                organization_id=org,
                batch_size=2,
                screenshot_urls=URLS,
            )
            for _ in range(workers)
        )
    )
    assert await legacy_left(store, org) == 0
    async with store.sessions() as session:
        shots = await session.scalar(
            sa.select(sa.func.count())
            .select_from(m.ExecutionScreenshot)
            .join(m.Job, m.Job.id == m.ExecutionScreenshot.job_id)
            .where(m.Job.organization_id == org)
        )
    assert shots == 12 * 3
    assert sum(r.counts["moved"] for r in reports) == 12
