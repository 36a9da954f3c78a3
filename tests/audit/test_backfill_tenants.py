"""The audit backfill with ``--org``, beside a twin organization, and beside another worker.

Two organizations' legacy records share their times, actions and patient references;
``backfill audit --org A`` moves A's and leaves B's where they are. A row another worker
has locked is skipped, not waited for (``FOR UPDATE SKIP LOCKED``), and the next run
moves it: after records that are newer, so the chain's times do not follow its seqs, and
an archived segment still spans its earliest record (a query until then finds it, hot or
archived). PostgreSQL: the only backend on which several workers run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.audit import archive_audit, backfill_audit, count_remaining
from execstore.ids import legacy_uuid
from execstore.schema.audit import PhiAuditArchive, phi_audit_log_legacy
from execstore.store import ExecStore

from .test_lifecycle import insert_legacy, open_legacy_store

THEN = dt.datetime(2024, 3, 1, 9, 30)  # the legacy column: naive UTC, milliseconds


def _rows(org: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"ck{org[-6:]}{i:016d}",
            "organization_id": org,
            "user_id": "ckuser000000000000000000001",
            "job_id": None,
            "action": "VIEW_CLAIM",
            "resource_type": "ClaimSubmission",
            "resource_id": f"ckclaim{i:018d}",
            "details": {"patientId": "PAT-1", "fields": ["dob"]},
            "ip_address": "10.0.0.7",
            "user_agent": None,
            "created_at": THEN + dt.timedelta(minutes=i),
        }
        for i in range(count)
    ]


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_one_organizations_backfill_leaves_the_twin_and_skips_a_locked_row(
    fresh_db_url: str, tmp_path: Path
) -> None:
    a, b = "ckorg00000000000000000twin-a", "ckorg00000000000000000twin-b"
    settings = await open_legacy_store(fresh_db_url, tmp_path)
    async with ExecStore.open(settings) as store:
        await insert_legacy(store, _rows(a, 3) + _rows(b, 3))
        moved = await backfill_audit(store.sessions, store.archives, organization_id=legacy_uuid(a))
        assert (moved.counts["moved"], moved.set_aside) == (3, [])
        assert await count_remaining(store.sessions) == 3
        async with store.unit(legacy_uuid(a)) as uow:
            assert [r.seq for r in (await uow.audit.query(patient_ref="PAT-1")).items] == [
                1,
                2,
                3,
            ]
        async with store.unit(legacy_uuid(b)) as uow:
            assert (await uow.audit.query()).items == []

        held = _rows(b, 3)[0]["id"]  # B's earliest
        async with store.sessions() as holder, holder.begin():
            await holder.execute(
                sa.select(phi_audit_log_legacy.c.id)
                .where(phi_audit_log_legacy.c.id == held)
                .with_for_update()
            )
            # Another worker holds one of B's rows: this run moves the other two, now.
            report = await asyncio.wait_for(
                backfill_audit(store.sessions, store.archives, organization_id=legacy_uuid(b)),
                10,
            )
            assert (report.counts["moved"], report.set_aside) == (2, [])
        rest = await backfill_audit(store.sessions, store.archives, organization_id=legacy_uuid(b))
        assert rest.counts["moved"] == 1
        assert await count_remaining(store.sessions) == 0
        earliest = THEN.replace(tzinfo=dt.UTC)
        window = {"until": earliest + dt.timedelta(seconds=30)}
        async with store.unit(legacy_uuid(b)) as uow:
            assert [r.created_at for r in (await uow.audit.query()).items] == [
                earliest + dt.timedelta(minutes=1),
                earliest + dt.timedelta(minutes=2),
                earliest,  # skipped once, moved last
            ]
            assert [r.seq for r in (await uow.audit.query(**window)).items] == [3]
        archived = await archive_audit(
            store.sessions, store.archives, hot_days=0, organization_id=legacy_uuid(b)
        )
        assert (archived.counts["segments"], archived.counts["records"]) == (1, 3)
        async with store.sessions() as session:
            span = (
                await session.execute(
                    sa.select(PhiAuditArchive.start_date, PhiAuditArchive.end_date).where(
                        PhiAuditArchive.organization_id == legacy_uuid(b)
                    )
                )
            ).one()
        assert tuple(span) == (earliest, earliest + dt.timedelta(minutes=2))
        async with store.unit(legacy_uuid(b)) as uow:
            assert [r.seq for r in (await uow.audit.query(**window)).items] == [3]
            exported = [json.loads(line)["seq"] async for line in uow.audit.export(**window)]
        assert exported == [3]
