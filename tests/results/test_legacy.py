"""Archiving legacy results the way real legacy data looks, on both backends.

- Defect B: a job that cannot be archived is set aside (by id, with the reason), left
  untouched and retried; it never stops the jobs after it.
- Defect C: legacy screenshot rows are found through the one legacy-id mapping, for jobs
  whose legacy id was a cuid, an upper-case or a braced uuid.
- Workers claim with FOR UPDATE SKIP LOCKED: a batch another worker holds is skipped,
  never waited for (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.config import load_settings
from execstore.db import create_engine
from execstore.ids import legacy_uuid
from execstore.migrations.runner import migrate
from execstore.results import backfill_results
from execstore.results.backfill import _claim, _legacy_job_uuid
from execstore.results.format import result_archive_key
from execstore.schema import legacy
from execstore.schema import models as m
from execstore.schema.results import LEGACY_JOB_UUID_INDEX
from execstore.store import ExecStore

from .conftest import BASE, archive_key, result_blobs, results_of
from .test_archival import URLS, legacy_left, make_legacy_jobs


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = {"d": value}
    return value


async def set_result_text(store: Any, job: uuid.UUID, text: str) -> None:
    """Store raw JSON text as the job's result (what a legacy writer could have stored)."""
    async with store.sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            sql = "UPDATE jobs SET result = CAST(:text AS jsonb) WHERE id = :id"
        else:
            sql = "UPDATE jobs SET result = :text WHERE id = :id"
        statement = sa.text(sql).bindparams(sa.bindparam("id", type_=m.Job.id.type))
        await session.execute(statement, {"text": text, "id": job})


async def result_of(store: Any, job: uuid.UUID) -> Any:
    """The job's result as stored, as text (some legacy JSON does not decode in Python)."""
    async with store.sessions() as session:
        return await session.scalar(
            sa.select(sa.cast(m.Job.result, sa.Text)).where(m.Job.id == job)
        )


async def legacy_rows_of(store: Any, job: uuid.UUID) -> int:
    async with store.sessions() as session:
        return int(
            await session.scalar(
                sa.select(sa.func.count())
                .select_from(m.execution_screenshots_legacy)
                .where(m.execution_screenshots_legacy.c.job_id == str(job))
            )
            or 0
        )


async def test_a_job_whose_archive_key_holds_other_bytes_is_set_aside(
    store: Any, org: uuid.UUID
) -> None:
    """Other bytes at the job's derived key: the job is set aside, nothing is overwritten."""
    outputs = await make_legacy_jobs(store, org, 3)
    taken = sorted(outputs)[1]
    async with store.sessions() as session:
        created_at = await session.scalar(sa.select(m.Job.created_at).where(m.Job.id == taken))
    key = result_archive_key(org, taken, created_at, store.archives.codec)
    squatter = await store.archives.store_document(key, {"written by": "someone else"})
    before = await result_of(store, taken)

    report = await backfill_results(
        store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
    )

    assert report.counts["moved"] == 2
    assert [aside.key for aside in report.set_aside] == [str(taken)]
    assert "ArchiveConflict" in report.set_aside[0].reason
    assert await result_of(store, taken) == before  # left exactly as it was
    assert await legacy_left(store, org) == 1
    assert await store.archives.read_document(squatter.ref) == {"written by": "someone else"}


async def test_bad_rows_are_set_aside_and_the_rest_archived(store: Any, org: uuid.UUID) -> None:
    outputs = await make_legacy_jobs(store, org, 6, legacy_rows=1)
    jobs = sorted(outputs)
    infinity, deep, huge, taken = jobs[0], jobs[2], jobs[3], jobs[4]
    # The row: valid JSON whose duration is the text "Infinity" — archivable now.
    await set_result_text(store, infinity, '{"success": true, "durationMs": "Infinity"}')
    too_deep = {"success": True, "deep": nested(150)}
    async with store.sessions() as session, session.begin():
        await session.execute(sa.update(m.Job).where(m.Job.id == deep).values(result=too_deep))
    await set_result_text(store, huge, '{"success": true, "n": 1e5000}')
    taken_output = {**outputs[taken], "legacyScreenshotRows": ["the processor's own"]}
    async with store.sessions() as session, session.begin():
        await session.execute(sa.update(m.Job).where(m.Job.id == taken).values(result=taken_output))
    before = {job: await result_of(store, job) for job in (deep, huge, taken)}

    dry = await backfill_results(
        store.sessions, store.archives, organization_id=org, dry_run=True, screenshot_urls=URLS
    )
    report = await backfill_results(
        store.sessions, store.archives, organization_id=org, batch_size=2, screenshot_urls=URLS
    )

    assert {a.key for a in dry.set_aside} == {str(deep), str(huge), str(taken)}
    assert report.counts["moved"] == 3
    assert len(report.set_aside) == 3
    reasons = {a.key: a.reason for a in report.set_aside}
    assert set(reasons) == {str(deep), str(huge), str(taken)}
    assert "InvalidJsonValue" in reasons[str(deep)]
    assert "deeper than 100" in reasons[str(deep)]
    # PostgreSQL prints 1e5000 as 5001 digits; SQLite keeps 1e5000, which reads as inf.
    assert "digits" in reasons[str(huge)] or "inf is not a JSON number" in reasons[str(huge)]
    assert "legacyScreenshotRows" in reasons[str(taken)]
    for job, value in before.items():  # left exactly as they were
        assert await result_of(store, job) == value
        assert await legacy_rows_of(store, job) == 1
    async with store.unit(org) as uow:
        summary = await uow.results.find(infinity)
        detail = await uow.results.detail(infinity)
    assert summary is not None
    assert summary.archived
    assert summary.duration_ms is None
    assert detail is not None
    assert detail.output["durationMs"] == "Infinity"
    assert await legacy_left(store, org) == 3

    again = await backfill_results(
        store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
    )
    assert again.counts["moved"] == 0
    assert {a.key for a in again.set_aside} == set(reasons)  # retried, still refused

    fixed = {"success": True, "deep": nested(10)}
    async with store.sessions() as session, session.begin():
        await session.execute(sa.update(m.Job).where(m.Job.id == deep).values(result=fixed))
    last = await backfill_results(
        store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
    )
    assert last.counts["moved"] == 1
    assert await legacy_rows_of(store, deep) == 0
    async with store.unit(org) as uow:
        detail = await uow.results.detail(deep)
    assert detail is not None
    extra = detail.output.pop("legacyScreenshotRows")
    assert detail.output == fixed
    assert len(extra) == 1


async def test_a_row_the_database_refuses_is_set_aside(
    store: Any, org: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = await make_legacy_jobs(store, org, 3)
    refused = sorted(outputs)[1]
    import execstore.results.backfill as archival

    real = archival.archive_values

    def values(job_id: uuid.UUID, ref: Any, *, archived_at: Any) -> dict[str, Any]:
        row = real(job_id, ref, archived_at=archived_at)
        # A NULL where the table has NOT NULL: the database refuses this one row's insert.
        return {**row, "sha256": None} if job_id == refused else row

    monkeypatch.setattr(archival, "archive_values", values)
    report = await backfill_results(
        store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
    )
    assert report.counts["moved"] == 2
    assert [a.key for a in report.set_aside] == [str(refused)]
    assert json.loads(await result_of(store, refused)) == outputs[refused]
    # Its uploaded blob waits for the retry: pending, not an orphan.
    monkeypatch.setattr(archival, "archive_values", real)
    retry = await backfill_results(
        store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
    )
    assert retry.counts["moved"] == 1
    assert len(await result_blobs(store)) == 3


LEGACY_IDS = {
    "cuid": lambda: "c" + uuid.uuid4().hex[:24],
    "upper": lambda: str(uuid.uuid4()).upper(),
    "braced": lambda: "{" + str(uuid.uuid4()) + "}",
    "braced-upper": lambda: "{" + str(uuid.uuid4()).upper() + "}",
    "hex": lambda: uuid.uuid4().hex,
    "canonical": lambda: str(uuid.uuid4()),
}


async def test_legacy_screenshot_rows_follow_any_legacy_id(
    fresh_db_url: str, tmp_path: Any
) -> None:
    """Defect C, end to end: a legacy database whose job ids are not canonical uuids."""
    await migrate(fresh_db_url, "legacy_baseline")
    org = str(uuid.uuid4())
    workflow = str(uuid.uuid4())
    ids = {kind: make() for kind, make in LEGACY_IDS.items()}
    engine = create_engine(load_settings(database_url=fresh_db_url), foreign_keys=False)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(legacy.organizations).values(id=org, name="Acme"))
        await conn.execute(
            sa.insert(legacy.workflows).values(id=workflow, organization_id=org, name="wf")
        )
        for kind, text in ids.items():
            result = {
                "success": True,
                "screenshots": [{"stepIndex": 0, "url": f"{BASE}{kind}/in-json.png"}],
            }
            await conn.execute(
                sa.insert(legacy.jobs).values(
                    id=text,
                    organization_id=org,
                    workflow_id=workflow,
                    credential_ids=[],
                    status="completed",
                    result=result,
                )
            )
            await conn.execute(
                sa.insert(legacy.execution_screenshots),
                [
                    {
                        "id": f"{kind}-{i}",
                        "job_id": text,
                        "step_index": i,
                        "url": f"{BASE}{kind}/legacy-{i}.png",
                        "captured_at": dt.datetime(2024, 5, 3, 15, i),
                    }
                    for i in range(2)
                ],
            )
    await engine.dispose()
    await migrate(fresh_db_url)

    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path / 'blobs'}")
    async with ExecStore.open(settings) as store:
        report = await backfill_results(store.sessions, store.archives, batch_size=4)
        assert report.set_aside == []
        assert report.counts["moved"] == len(ids)
        assert report.counts["legacy_screenshot_rows"] == 2 * len(ids)
        async with store.sessions() as session:
            left = await session.scalar(
                sa.select(sa.func.count()).select_from(m.execution_screenshots_legacy)
            )
        assert left == 0
        async with store.unit(legacy_uuid(org)) as uow:
            for kind, text in ids.items():
                job = legacy_uuid(text)
                shots = await uow.results.screenshots(job)
                detail = await uow.results.detail(job)
                assert [s.url for s in shots] == [
                    f"{BASE}{kind}/in-json.png",
                    f"{BASE}{kind}/legacy-0.png",
                    f"{BASE}{kind}/legacy-1.png",
                ], kind
                assert detail is not None
                assert [r["id"] for r in detail.output["legacyScreenshotRows"]] == [
                    f"{kind}-0",
                    f"{kind}-1",
                ]
                assert await archive_key(store, job) in await result_blobs(store)


postgres_only = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)]
)


@postgres_only
async def test_legacy_rows_are_found_through_the_expression_index(store: Any) -> None:
    wanted = [uuid.uuid4(), uuid.uuid4()]
    query = sa.select(m.execution_screenshots_legacy.c.id).where(
        _legacy_job_uuid("postgresql").in_(wanted)
    )
    sql = str(query.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))
    async with store.engine.connect() as conn:
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join((await conn.exec_driver_sql("EXPLAIN " + sql)).scalars())
    assert LEGACY_JOB_UUID_INDEX in plan


@postgres_only
async def test_a_claimed_batch_is_skipped_not_waited_for(store: Any, org: uuid.UUID) -> None:
    outputs = await make_legacy_jobs(store, org, 6)
    held = sorted(outputs)[:3]
    async with store.sessions() as holder, holder.begin():
        # Worker one has claimed its batch and is still working on it.
        claimed = await _claim(holder, 3, None, org=org, lock=True)
        assert [job.job_id for job in claimed] == held
        # Worker two must skip those rows; a worker that waits for them fails here.
        report = await asyncio.wait_for(
            backfill_results(
                store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
            ),
            timeout=5,
        )
        assert report.counts["moved"] == 3
        assert report.set_aside == []
    assert await legacy_left(store, org) == 3
    rest = await backfill_results(
        store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
    )
    assert rest.counts["moved"] == 3
    assert await legacy_left(store, org) == 0
    async with store.unit(org) as uow:
        for job in held:
            assert (await results_of(uow).find(job)).archived  # type: ignore[union-attr]
