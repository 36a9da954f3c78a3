"""The Results API on both backends: save, summary, detail, screenshots, write-once rules."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.errors import Conflict, DatabaseError, NotFound
from execstore.results.format import result_archive_key
from execstore.schema import models as m
from support.timeline import new_jobs

from .conftest import (
    BASE,
    archive_key,
    make_output,
    put_result_document,
    result_blobs,
    results_of,
)


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
    key = await archive_key(store, job)
    assert key.startswith(f"results/{org}/")
    assert str(job) in key
    assert await result_blobs(store) == [key]


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


class CountingStore:
    """The real blob store, counting every call made on it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return found(*args, **kwargs)

        return counted


async def test_summary_does_no_blob_io(
    store: Any, org: uuid.UUID, job: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with store.unit(org) as uow:
        await results_of(uow).save(job, make_output(org, job))
    counting = CountingStore(store.blobs)
    monkeypatch.setattr(store.archives, "store", counting)
    store.archives.cache.clear()
    async with store.unit(org) as uow:
        summary = await results_of(uow).find(job)
        shots = await results_of(uow).screenshots(job)
    assert summary is not None
    assert summary.screenshot_count == 4
    assert len(shots) == 4
    assert counting.calls == []
    async with store.unit(org) as uow:
        await results_of(uow).detail(job)  # the counter does see a read that does I/O
    assert counting.calls == ["get"]


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
    assert urls == [s["url"] for s in output["screenshots"][:6]]  # the long one whole too
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
            await uow.results.get(job)
        assert await uow.results.find(job) is None
        with pytest.raises(NotFound):
            await uow.results.detail(job)
        with pytest.raises(NotFound):
            await uow.results.screenshots(job)
    assert await result_blobs(store) == []


async def test_no_result_yet_is_not_found_or_none(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    async with store.unit(org) as uow:
        assert await uow.results.find(job) is None
        with pytest.raises(NotFound, match="no result"):
            await uow.results.get(job)
        with pytest.raises(NotFound, match="no result"):
            await uow.results.detail(job)
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
        "when": "2024-01-01T00:00:00+00:00",
        "ratio": -0.0,
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
    assert detail.output == output


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
        assert await uow.results.find(job) is None


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


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        # The plan's processor shape: stats {totalSteps, successfulSteps, failedSteps, duration}
        (
            {
                "success": True,
                "stats": {
                    "totalSteps": 7,
                    "successfulSteps": 6,
                    "failedSteps": 1,
                    "duration": 5400,
                },
            },
            (7, 6, 1, 5400),
        ),
        ({"stats": {"totalSteps": 2, "durationMs": 812.6}}, (2, 0, 0, 813)),
        ({"stats": {"duration_ms": "1500"}}, (0, 0, 0, 1500)),
        ({"durationMs": 0, "stats": {"duration": 99}}, (0, 0, 0, 0)),  # 0 is a duration
        ({"durationMs": "fast", "stats": {"duration": 99}}, (0, 0, 0, 99)),
        # Numbers JSON text can spell but a summary cannot hold: unknown, never an error.
        ({"durationMs": "Infinity"}, (0, 0, 0, None)),
        ({"durationMs": "-Infinity", "stats": {"totalSteps": "NaN"}}, (0, 0, 0, None)),
        ({"durationMs": "1e400"}, (0, 0, 0, None)),
        ({"durationMs": 10**30, "stats": {"totalSteps": -4}}, (0, 0, 0, None)),
        (
            {"startedAt": "0001-01-01T00:00:00+01:00", "completedAt": "9999-12-31T23:00-05:00"},
            (0, 0, 0, None),
        ),
    ],
)
async def test_summary_reads_the_plan_shape_and_odd_numbers(
    store: Any, org: uuid.UUID, job: uuid.UUID, output: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    async with store.unit(org) as uow:
        saved = await uow.results.save(job, output)
    async with store.unit(org) as uow:
        again = await uow.results.find(job)
        detail = await uow.results.detail(job)
    got = (saved.total_steps, saved.successful_steps, saved.failed_steps, saved.duration_ms)
    assert got == expected
    assert again == saved
    assert detail is not None
    assert detail.output == output


async def test_screenshot_numbers_out_of_range_are_unknown(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    output = {
        "screenshots": [
            {
                "url": "https://x.example/a.png",
                "width": "Infinity",
                "height": 1e300,
                "stepIndex": "1e400",
                "capturedAt": "9999-12-31T23:59:59-05:00",
            },
        ]
    }
    async with store.unit(org) as uow:
        await uow.results.save(job, output)
    async with store.unit(org) as uow:
        (shot,) = await uow.results.screenshots(job)
        created = (await uow.jobs.get(job)).created_at
    assert (shot.width, shot.height, shot.step_index) == (None, None, None)
    assert shot.url == "https://x.example/a.png"
    assert shot.captured_at == created  # the time could not be read: the job's own


def sas_url(path: str) -> str:
    """An Azure user-delegation SAS URL for ``path`` (about 420 characters)."""
    query = (
        "sv=2023-11-03&st=2024-05-03T14%3A00%3A00Z&se=2024-05-10T14%3A00%3A00Z&skoid="
        f"{uuid.UUID(int=7)}&sktid={uuid.UUID(int=9)}&skt=2024-05-03T14%3A00%3A00Z"
        "&ske=2024-05-10T14%3A00%3A00Z&sks=b&skv=2023-11-03&sr=b&sp=r"
        "&sig=Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8lMkIlMkY%3D"
    )
    return f"https://claimautoprod.blob.core.windows.net/{path}?{query}"


@pytest.mark.parametrize("base", [BASE, None], ids=["with-base", "no-base"])
async def test_long_signed_urls_come_back_whole(
    store: Any, org: uuid.UUID, job: uuid.UUID, base: str | None
) -> None:
    """Defect G: a 420-character SAS URL came back as url=None from screenshots()."""
    signed_elsewhere = sas_url(f"screenshots-signed/{org}/{job}/step-01.png")
    signed_here = sas_url(f"screenshots/{org}/{job}/step-02.png")
    assert len(signed_elsewhere) > 400
    output = make_output(org, job, shots=1)
    output["screenshots"] += [
        {"stepIndex": 1, "url": signed_elsewhere},
        {"stepIndex": 2, "url": signed_here},
        {"stepIndex": 3, "url": "https://cdn.example.org/" + "x" * 3000 + ".png"},
    ]
    async with store.unit(org) as uow:
        await results_of(uow, base).save(job, output)
    async with store.unit(org) as uow:
        shots = await results_of(uow, base).screenshots(job)
    assert [s.url for s in shots] == [s["url"] for s in output["screenshots"]]


async def test_archive_key_layout(store: Any, org: uuid.UUID) -> None:
    """The README's layout: results/<org>/<yyyy>/<mm>/<job>/result.json.gz, UTC month."""
    late_may_in_chicago = dt.datetime(
        2024, 5, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))
    )
    async with store.unit(org) as uow:
        workflow = await uow.reference.add_workflow("wf")
        job = (await uow.jobs.create(workflow_id=workflow.id, created_at=late_may_in_chicago)).id
        await uow.results.save(job, {"success": True})
    expected = f"results/{org}/2024/06/{job}/result.json.gz"
    assert await result_blobs(store) == [expected]
    assert await archive_key(store, job) == expected
    with gzip.open(store.blobs.root / expected) as raw:  # a plain .json.gz file
        assert json.load(raw) == {"success": True}


async def test_concurrent_saves_of_one_job_write_its_rows_once(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    """No screenshot row twice: a job's rows go in with its archive row, whose key is unique."""
    output = make_output(org, job, shots=5)

    async def save() -> None:
        async with store.unit(org) as uow:
            await uow.results.save(job, output)

    outcomes = await asyncio.gather(save(), save(), save(), return_exceptions=True)
    # PostgreSQL serializes them (the later ones find the result saved: no-ops); SQLite may
    # refuse a writer whose snapshot is stale ("database is locked"), never write twice.
    assert outcomes.count(None) >= 1
    assert all(o is None or isinstance(o, DatabaseError) for o in outcomes), outcomes
    async with store.sessions() as session:
        rows = (
            (
                await session.execute(
                    sa.select(m.ExecutionScreenshot.ordinal).where(
                        m.ExecutionScreenshot.job_id == job
                    )
                )
            )
            .scalars()
            .all()
        )
        archives = await session.scalar(
            sa.select(sa.func.count()).where(m.JobResultArchive.job_id == job)
        )
    assert sorted(rows) == list(range(5))
    assert archives == 1
