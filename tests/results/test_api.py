"""The Results API on both backends: save, summary, detail, screenshots, write-once rules."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.errors import Conflict, NotFound
from execstore.results.format import result_archive_key
from execstore.schema import models as m

from .conftest import BASE, make_output, new_jobs, put_result_document, result_blobs, results_of


async def test_save_stores_summary_rows_and_archive(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    output = make_output(org, job, steps=6, shots=4, failed=1)
    async with store.unit(org) as uow:
        saved = await results_of(uow).save(job, output)
    assert (saved.total_steps, saved.successful_steps, saved.failed_steps) == (6, 5, 1)
    assert saved.success is False
    assert saved.duration_ms == 90500
    assert saved.screenshot_count == 4
    assert saved.archived
    assert not saved.legacy
    assert not saved.archive_missing

    async with store.sessions() as session:
        result = await session.scalar(sa.select(m.Job.result).where(m.Job.id == job))
        suffixes = (
            await session.scalars(
                sa.select(m.ExecutionScreenshot.key_suffix)
                .where(m.ExecutionScreenshot.job_id == job)
                .order_by(m.ExecutionScreenshot.ordinal)
            )
        ).all()
        archive = await session.get(m.JobResultArchive, job)
    assert "stepResults" not in result
    assert "screenshots" not in result
    assert len(str(result)) < 120
    # Only what cannot be derived: the part after <org>/<job>/.
    assert suffixes == [f"step-{i:02d}-1714744800.png" for i in range(4)]
    assert archive is not None
    assert archive.record_count == 1
    assert archive.blob_key.startswith(f"results/{org}/")
    assert str(job) in archive.blob_key
    assert await result_blobs(store) == [archive.blob_key]


async def test_detail_returns_full_output_with_original_keys(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    output = make_output(org, job)
    async with store.unit(org) as uow:
        await results_of(uow).save(job, output)
    async with store.unit(org) as uow:
        detail = await results_of(uow).detail(job)
        again = await results_of(uow).detail(job)
    assert detail is not None
    assert again is not None
    assert detail.output == output  # unknown keys and camelCase preserved
    assert detail.summary.total_steps == 6
    assert store.archives.cache.stats().hits >= 1


async def test_summary_does_no_blob_io(store: Any, org: uuid.UUID, job: uuid.UUID) -> None:
    async with store.unit(org) as uow:
        await results_of(uow).save(job, make_output(org, job))
    async with store.sessions() as session:
        key = (await session.get(m.JobResultArchive, job)).blob_key
    await store.blobs.delete(key)  # a summary read must not notice
    async with store.unit(org) as uow:
        summary = await results_of(uow).summary(job)
    assert summary is not None
    assert summary.screenshot_count == 4


async def test_screenshots_rebuild_exact_urls(store: Any, org: uuid.UUID, job: uuid.UUID) -> None:
    output = make_output(org, job, shots=3)
    foreign = "https://cdn.example.org/shots/x.png?sig=abc"
    too_long = "https://elsewhere.example.com/" + "a" * 400 + ".png"
    output["screenshots"] += [
        {"stepIndex": 1, "url": foreign, "width": 70000, "height": -5, "capturedAt": 1714744800000},
        {"stepIndex": 2, "url": BASE + "other/" + "b.png", "width": 10, "height": 20},
        {"step_index": 99999, "url": too_long, "captured_at": "not a time"},
        {"no": "url"},
    ]
    async with store.unit(org) as uow:
        await results_of(uow).save(job, output)
    async with store.unit(org) as uow:
        shots = await results_of(uow).screenshots(job)
    urls = [s.url for s in shots]
    assert urls[:5] == [s["url"] for s in output["screenshots"][:5]]
    assert urls[5] is None  # too long to keep: the archive has it
    assert [s.ordinal for s in shots] == list(range(6))
    assert shots[3].width is None
    assert shots[3].height is None
    assert shots[3].captured_at == dt.datetime(2024, 5, 3, 14, 0, tzinfo=dt.UTC)
    assert shots[5].step_index is None
    assert shots[0].captured_at == dt.datetime(2024, 5, 3, 14, 0, tzinfo=dt.UTC)


async def test_without_a_base_urls_are_kept_whole(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    output = make_output(org, job, shots=2)
    async with store.unit(org) as uow:
        await uow.results.save(job, output)
    async with store.unit(org) as uow:
        shots = await uow.results.screenshots(job)
    assert [s.url for s in shots] == [s["url"] for s in output["screenshots"]]


async def test_same_output_twice_is_idempotent(store: Any, org: uuid.UUID, job: uuid.UUID) -> None:
    output = make_output(org, job)
    async with store.unit(org) as uow:
        first = await results_of(uow).save(job, output)
    async with store.unit(org) as uow:
        second = await results_of(uow).save(job, dict(output))
    assert first == second
    async with store.sessions() as session:
        count = await session.scalar(
            sa.select(sa.func.count()).where(m.ExecutionScreenshot.job_id == job)
        )
    assert count == 4


async def test_different_output_is_a_conflict_and_keeps_the_first(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    output = make_output(org, job)
    async with store.unit(org) as uow:
        await results_of(uow).save(job, output)
    changed = {**output, "success": True}
    with pytest.raises(Conflict):
        async with store.unit(org) as uow:
            await results_of(uow).save(job, changed)
    async with store.unit(org) as uow:
        detail = await results_of(uow).detail(job)
    assert detail is not None
    assert detail.output == output


async def test_other_organization_job_is_not_found(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    other = uuid.uuid4()
    async with store.sessions() as session, session.begin():
        session.add(m.Organization(id=other, name="other"))
    async with store.unit(other) as uow:
        with pytest.raises(NotFound):
            await uow.results.save(job, make_output(org, job))
        with pytest.raises(NotFound):
            await uow.results.summary(job)
        with pytest.raises(NotFound):
            await uow.results.detail(job)
        with pytest.raises(NotFound):
            await uow.results.screenshots(job)
    assert await result_blobs(store) == []


async def test_no_result_yet_reads_as_none(store: Any, org: uuid.UUID, job: uuid.UUID) -> None:
    async with store.unit(org) as uow:
        assert await uow.results.summary(job) is None
        assert await uow.results.detail(job) is None
        assert await uow.results.screenshots(job) == []


async def test_snake_case_and_odd_shapes_are_accepted(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    output = {
        "success": True,
        "step_results": [{"status": "completed"}, {"status": "FAILED"}, "weird", None],
        "screenshots": "not a list",
        "started_at": "2024-05-03T14:00:00+02:00",
        "completed_at": "2024-05-03T14:00:02.250+02:00",
        "when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "ratio": float("nan"),
        "nul": "a\x00b",
    }
    async with store.unit(org) as uow:
        saved = await uow.results.save(job, output)
    assert (saved.total_steps, saved.successful_steps, saved.failed_steps) == (4, 1, 1)
    assert saved.duration_ms == 2250
    assert saved.screenshot_count == 0
    async with store.unit(org) as uow:
        detail = await uow.results.detail(job)
    assert detail is not None
    assert detail.output["when"] == "2024-01-01T00:00:00+00:00"
    assert detail.output["ratio"] == "nan"
    assert detail.output["nul"] == "a\x00b"


async def test_rollback_after_save_removes_the_blob(store: Any, org: uuid.UUID) -> None:
    (job,) = await new_jobs(store, org)

    seen: list[int] = []

    async def save_then_fail() -> None:
        async with store.unit(org) as uow:
            await uow.results.save(job, make_output(org, job))
            seen.append(len(await result_blobs(store)))
            raise RuntimeError("caller fails before commit")

    with pytest.raises(RuntimeError):
        await save_then_fail()
    assert seen == [1]
    assert await result_blobs(store) == []
    async with store.unit(org) as uow:
        assert await uow.results.summary(job) is None


async def test_rollback_keeps_a_pre_existing_identical_blob(store: Any, org: uuid.UUID) -> None:
    (job,) = await new_jobs(store, org)
    output = make_output(org, job)
    async with store.sessions() as session:
        row = await session.get(m.Job, job)
        key = result_archive_key(org, job, row.created_at, store.archives.codec)
    # A crashed earlier attempt (no rollback hook ran) left exactly this blob behind.
    _, created = await put_result_document(store.archives, key, output)
    assert created

    async def save_then_fail() -> None:
        async with store.unit(org) as uow:
            await uow.results.save(job, output)
            raise RuntimeError("this attempt fails too, after its (no-op) upload")

    with pytest.raises(RuntimeError):
        await save_then_fail()
    assert await result_blobs(store) == [key]  # not ours to delete
    async with store.unit(org) as uow:
        await uow.results.save(job, output)
    async with store.unit(org) as uow:
        detail = await uow.results.detail(job)
    assert detail is not None
    assert detail.output == output
