"""EXECSTORE_SCREENSHOT_BASE_URL reaches the results repository through the facade."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from execstore.config import load_settings
from execstore.schema import models as m
from execstore.store import ExecStore


async def test_screenshot_base_url_setting_shortens_stored_suffixes(db_url: str, tmp_path) -> None:
    base = "https://acme.blob.core.windows.net/screenshots/"
    settings = load_settings(
        database_url=db_url, blob_url=f"file:{tmp_path}", screenshot_base_url=base
    )
    org = uuid.uuid4()
    async with ExecStore.open(settings) as store:
        async with store.unit(org) as uow:
            uow.session.add(m.Organization(id=org, name="o"))
            wf = await uow.reference.add_workflow("wf")
            job = await uow.jobs.create(workflow_id=wf.id)
            url = f"{base}{org}/{job.id}/step-03.png"
            await uow.results.save(
                job.id,
                {
                    "success": True,
                    "screenshots": [
                        {
                            "stepIndex": 3,
                            "url": url,
                            "capturedAt": dt.datetime.now(dt.UTC).isoformat(),
                        }
                    ],
                },
            )
        async with store.unit(org) as uow:
            shots = await uow.results.screenshots(job.id)
            stored = await uow.session.scalar(
                sa.select(m.ExecutionScreenshot.key_suffix).where(
                    m.ExecutionScreenshot.job_id == job.id
                )
            )
    assert [s.url for s in shots] == [url]
    assert stored == "step-03.png"
