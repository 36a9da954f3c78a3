"""``execstore demo``: the main job end to end on the embedded default (SQLite + local blobs).

A workflow processor saves the whole output of a few claim-status jobs; execstore keeps a
slim summary in ``jobs.result``, one row per screenshot and the full output as a verified
blob; a dashboard then reads the summary (no blob I/O) and an investigator the detail
(through the LRU cache).
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from typing import Any

import sqlalchemy as sa
from rich.table import Table

from execstore.cli._common import console, run, settings_for
from execstore.config import Settings
from execstore.migrations import runner
from execstore.schema import models as m
from execstore.store import ExecStore

PAYERS = ["Aetna", "Cigna", "UnitedHealthcare", "Humana", "Blue Cross Blue Shield of Texas"]
STEPS = ["open portal", "log in", "search member", "open claim", "read status", "download EOB"]


def _output(job_id: uuid.UUID, rng: random.Random, started: dt.datetime) -> dict[str, Any]:
    steps = []
    shots = []
    clock = started
    for index, name in enumerate(STEPS):
        took = rng.randint(300, 4000)
        ok = rng.random() > 0.05
        steps.append(
            {
                "stepIndex": index,
                "name": name,
                "success": ok,
                "durationMs": took,
                "selector": f"#claims-table > tr:nth-child({rng.randint(1, 40)})",
                "observations": [f"{name}: {rng.choice(PAYERS)} page rendered in {took} ms"],
            }
        )
        clock += dt.timedelta(milliseconds=took)
        shots.append(
            {
                "stepIndex": index,
                "url": f"https://demo.blob.core.windows.net/screenshots/{job_id}/{index:02d}.png",
                "width": 1440,
                "height": 900,
                "capturedAt": clock.isoformat(),
            }
        )
    return {
        "success": all(s["success"] for s in steps),
        "stepResults": steps,
        "screenshots": shots,
        "extractedData": {
            "payer": rng.choice(PAYERS),
            "claimStatus": rng.choice(["paid", "denied", "pending review"]),
            "paidAmount": f"{rng.uniform(20, 900):.2f}",
        },
        "startedAt": started.isoformat(),
        "completedAt": clock.isoformat(),
        "durationMs": int((clock - started).total_seconds() * 1000),
    }


async def _demo(settings: Settings, jobs: int) -> None:
    console.rule("[bold]execstore demo")
    console.print(f"database: {settings.database_url}\nblobs:    {settings.blob_url}")
    await runner.migrate(settings.database_url, settings=settings)
    console.print(f"schema at [bold]{runner.head_revision()}[/bold]")
    rng = random.Random(7)
    org = uuid.uuid4()
    async with ExecStore.open(settings) as store:
        async with store.unit(org) as uow:
            await uow.reference.add_organization("Demo Clinic")
            workflow = await uow.reference.add_workflow("Claim status check")
            job_ids = []
            for _ in range(jobs):
                job = await uow.jobs.create(workflow_id=workflow.id, status="completed")
                started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=rng.randint(1, 600))
                await uow.results.save(job.id, _output(job.id, rng, started))
                job_ids.append(job.id)
        console.print(f"saved the results of {jobs} jobs for organization {org}")

        first = job_ids[0]
        async with store.unit(org) as uow:
            summary = await uow.results.summary(first)
            t0 = time.perf_counter()
            detail = await uow.results.detail(first)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            await uow.results.detail(first)
            cached = time.perf_counter() - t0
            screenshots = await uow.results.screenshots(first)
            sizes = (
                await uow.session.execute(
                    sa.select(
                        sa.func.avg(sa.func.length(sa.cast(m.Job.result, sa.Text))),
                        sa.func.avg(m.JobResultArchive.raw_size),
                        sa.func.avg(m.JobResultArchive.stored_size),
                    )
                    .join(m.JobResultArchive, m.JobResultArchive.job_id == m.Job.id)
                    .where(m.Job.organization_id == org)
                )
            ).one()

        console.print("\n[bold]dashboard[/bold] (jobs.result, no blob I/O):", summary)
        assert detail is not None
        console.print(
            f"[bold]investigator[/bold]: detail has {len(detail.output['stepResults'])} step "
            f"results; cold read {cold * 1000:.2f} ms, cached {cached * 1e6:.0f} µs"
        )
        console.print(f"first screenshot: {screenshots[0].url}")
        table = Table("where", "bytes per job", title="what a job's result costs")
        table.add_row("jobs.result (summary JSON)", f"{sizes[0]:.0f}")
        table.add_row("full output, raw JSON", f"{sizes[1]:.0f}")
        table.add_row("full output, gzip blob", f"{sizes[2]:.0f}")
        console.print(table)
        console.print(f"cache: {store.archives.cache.stats() if store.archives.cache else 'off'}")


def run_demo(jobs: int = 12) -> None:
    """Migrate the embedded database and walk through the main job."""
    run(_demo(settings_for(), jobs))
