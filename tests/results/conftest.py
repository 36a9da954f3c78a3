"""Helpers for the results tests: jobs in a fresh organization and realistic outputs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from execstore.archival import reconcile as reconcile_kinds
from execstore.blob import ArchiveRef, Archives
from execstore.operations import BatchReport
from execstore.results import ResultArchives, ResultRepository, ScreenshotUrls

BASE = "https://claimautoprod.blob.core.windows.net/screenshots/"


def results_of(uow: Any, base: str | None = BASE) -> ResultRepository:
    """The unit's ResultRepository with the test screenshot base configured."""
    return ResultRepository(
        session=uow.session,
        organization_id=uow.organization_id,
        archives=uow.store.archives,
        hooks=uow,
        sessions=uow.store.sessions,
        screenshot_urls=ScreenshotUrls(base),
    )


def make_output(
    org: uuid.UUID, job: uuid.UUID, *, steps: int = 6, shots: int = 4, failed: int = 1
) -> dict[str, Any]:
    """A processor output in the TypeScript shape, with a few keys execstore never heard of."""
    start = dt.datetime(2024, 5, 3, 14, 0, tzinfo=dt.UTC)
    step_results = [
        {
            "stepIndex": i,
            "name": f"step {i}",
            "success": i >= failed,
            "durationMs": 1000 + i,
            "output": {"text": f"claim {i} status page", "fields": [i, i * 2]},
        }
        for i in range(steps)
    ]
    screenshots = [
        {
            "stepIndex": i % steps,
            "url": f"{BASE}{org}/{job}/step-{i:02d}-1714744800.png",
            "width": 1920,
            "height": 1080,
            "capturedAt": (start + dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
        }
        for i in range(shots)
    ]
    return {
        "success": failed == 0,
        "stepResults": step_results,
        "screenshots": screenshots,
        "extractedData": {"claimStatus": "PAID", "amount": 123.45, "notes": None},
        "startedAt": "2024-05-03T14:00:00Z",
        "completedAt": "2024-05-03T14:01:30.500Z",
        "durationMs": 90500,
        "processorVersion": "7.3.1",
        "someFutureField": {"nested": [1, {"deep": True}]},
    }


async def archive_key(store: Any, job: uuid.UUID) -> str:
    """The blob key of ``job``'s result archive row (derived: rows do not store keys)."""
    from execstore.results.format import ref_from_row
    from execstore.schema import models as m

    async with store.sessions() as session:
        row = await session.get(m.JobResultArchive, job)
        owner = await session.get(m.Job, job)
    assert row is not None
    assert owner is not None
    return ref_from_row(row, organization_id=owner.organization_id, created_at=owner.created_at).key


async def result_blobs(store: Any) -> list[str]:
    """Every blob key under results/."""
    return [info.key async for info in store.blobs.list("results/")]


async def reconcile(sessions: Any, archives: Archives, **options: Any) -> BatchReport:
    """The reconciler's report on result archives alone."""
    [report] = await reconcile_kinds(sessions, archives, [ResultArchives()], **options)
    return report


async def put_result_document(
    archives: Archives, key: str, document: Any
) -> tuple[ArchiveRef, bool]:
    """Archive ``document`` at ``key`` as a save would: the ref and whether it was created."""
    stored = await archives.store_document(key, document)
    return stored.ref, stored.created
