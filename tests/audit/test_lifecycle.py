"""Legacy rows -> chain -> archived segments -> retention, verifiable at every step."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.audit import (
    archive_audit,
    backfill_audit,
    count_remaining,
    verify_audit,
)
from execstore.config import AUDIT_RETENTION_FLOOR_DAYS, load_settings
from execstore.errors import BackfillIncomplete, ConfigurationError, InvalidRetention
from execstore.ids import legacy_uuid
from execstore.migrations.runner import migrate
from execstore.operations import apply_retention
from execstore.schema.audit import phi_audit_log_legacy
from execstore.store import ExecStore

from .conftest import access, hot_rows, org_param

BEFORE_CONTRACT = "contract_execution_log"
LEGACY_ORG = "ckorg0000000000000000legacy"  # a cuid: maps to md5(text) as a uuid
NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)  # timestamp(3)


def legacy_rows(count: int = 40, *, bad_json: bool = False) -> list[dict[str, Any]]:
    """Legacy audit rows over the last seven years: cuids, upper-case and braced uuids."""
    rows = []
    for i in range(count):
        age = dt.timedelta(days=7 * 365 - i * 63)  # 7 years ago .. about 2 months ago
        rid = [f"ckaudit{i:018d}", str(uuid.uuid4()).upper(), "{" + str(uuid.uuid4()) + "}"][i % 3]
        rows.append(
            {
                "id": rid,
                "organization_id": LEGACY_ORG,
                "user_id": f"ckuser{i % 3:019d}",
                "job_id": str(uuid.uuid4()) if i % 2 else None,
                "action": "VIEW_CLAIM" if i % 4 else "EXPORT_PHI",
                "resource_type": "ClaimSubmission",
                "resource_id": f"ckclaim{i:018d}",
                "details": {
                    "patientId": f"PAT-{i % 5}",
                    "claimId": f"ckclm{i:020d}",
                    "fields": ["dob", "memberId"],
                    "payer": "Aetna",
                },
                "ip_address": ["10.0.0.7", "unknown", "1.2.3.4, 5.6.7.8", None][i % 4],
                "user_agent": "Mozilla/5.0 LegacyPortal/2.1" if i % 2 else None,
                "created_at": NOW - age,
            }
        )
    return rows


async def open_legacy_store(url: str, tmp_path: Path) -> Any:
    await migrate(url, BEFORE_CONTRACT)
    return load_settings(database_url=url, blob_url=f"file:{tmp_path / 'blobs'}")


async def insert_legacy(
    store: Any, rows: list[dict[str, Any]], *, raw_details: str | None = None
) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(phi_audit_log_legacy), rows)
        if raw_details is not None:  # SQLite's JSON column can hold text that is not JSON
            await conn.execute(
                sa.text("UPDATE phi_audit_log_legacy SET details = :d WHERE id = :id"),
                {"d": raw_details, "id": rows[-1]["id"]},
            )


async def test_legacy_rows_move_archive_and_expire(
    fresh_db_url: str, backend: str, tmp_path: Path
) -> None:
    settings = await open_legacy_store(fresh_db_url, tmp_path)
    org = legacy_uuid(LEGACY_ORG)
    rows = legacy_rows()
    async with ExecStore.open(settings) as store:
        await insert_legacy(store, rows)
        report = await backfill_audit(store.sessions, store.archives, batch_size=7)
        async with store.unit(org) as uow:  # a new record, after the legacy ones
            await uow.audit.record(access(0))
        assert report.counts["moved"] == len(rows)
        assert report.set_aside == []
        assert report.counts["dictionaries"] == 0 or report.counts["dictionaries"] == 1
        assert await count_remaining(store.sessions) == 0
        verified = await verify_audit(store.sessions, store.archives, organization_id=org)
        assert not verified.needs_attention, verified.set_aside
        assert verified.counts["records"] == len(rows) + 1

        async with store.unit(org) as uow:
            moved = (await uow.audit.query(limit=1000)).items
        assert [r.seq for r in moved] == list(range(1, len(rows) + 2))
        first = moved[0]
        assert first.id == legacy_uuid(rows[0]["id"])
        assert first.actor_id == legacy_uuid(rows[0]["user_id"])
        assert first.patient_ref == "PAT-0"
        assert first.claim_id == legacy_uuid("ckclm" + "0" * 20)
        assert first.details == rows[0]["details"]
        assert first.created_at == rows[0]["created_at"].replace(tzinfo=dt.UTC)
        ips = [r.source_ip for r in moved[:4]]
        assert ips == ["10.0.0.7", "unknown", "1.2.3.4, 5.6.7.8", None]
        assert moved[1].id == uuid.UUID(rows[1]["id"])  # upper case: the same uuid
        assert moved[2].id == uuid.UUID(rows[2]["id"].strip("{}"))  # braced: the same uuid

        # Archive everything older than a day: records leave the hot table, stay readable.
        archived = await archive_audit(store.sessions, store.archives, hot_days=1)
        assert archived.set_aside == []
        assert archived.counts["records"] == len(rows)
        assert archived.counts["segments"] >= 30  # one per UTC month at most
        hot = [r.seq for r in await hot_rows(store, org)]
        assert hot == [len(rows) + 1]  # today's record stays hot
        async with store.unit(org) as uow:
            patient = await uow.audit.query(patient_ref="PAT-3")
            assert [r.seq for r in patient.items] == [4, 9, 14, 19, 24, 29, 34, 39]
            everything = [line async for line in uow.audit.export()]
            assert len(everything) == len(rows) + 1
            await uow.audit.record(access(1, patient_ref="PAT-3"))
            both = await uow.audit.query(patient_ref="PAT-3", limit=5)
            rest = await uow.audit.query(patient_ref="PAT-3", cursor=both.next_cursor)
            assert [r.seq for r in both.items + rest.items][-1] == len(rows) + 2
        verified = await verify_audit(store.sessions, store.archives, organization_id=org)
        assert not verified.needs_attention, verified.set_aside
        assert verified.details["organizations"][0].archived_records == len(rows)

        # The floor: a shorter retention is refused, whatever the caller says.
        with pytest.raises(InvalidRetention, match="six years"):
            await apply_retention(store.sessions, store.archives, "audit", days=365)
        dry = await apply_retention(
            store.sessions, store.archives, "audit", days=AUDIT_RETENTION_FLOOR_DAYS, dry_run=True
        )
        kept_before = len(await _segments(store))
        assert dry.counts["archives"] > 0
        assert len(await _segments(store)) == kept_before
        done = await apply_retention(
            store.sessions, store.archives, "audit", days=AUDIT_RETENTION_FLOOR_DAYS
        )
        assert done.set_aside == []
        assert done.counts["archives"] == dry.counts["archives"]
        left = await _segments(store)
        six_years_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=AUDIT_RETENTION_FLOOR_DAYS)
        assert all(_aware(end) >= six_years_ago for end in left)  # nothing younger went
        assert len(done.details["tombstones"]) == done.counts["archives"]
        verified = await verify_audit(store.sessions, store.archives, organization_id=org)
        assert not verified.needs_attention, (
            verified.set_aside
        )  # anchored by the checkpoint at each gap
        assert verified.details["organizations"][0].first_seq > 2

    # Nothing is left in the legacy table: the contract revision may drop it now.
    await migrate(fresh_db_url)


async def _segments(store: Any) -> list[dt.datetime]:
    async with store.engine.connect() as conn:
        return list(
            (await conn.execute(sa.text("SELECT end_date FROM phi_audit_archives"))).scalars()
        )


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def test_bad_legacy_rows_are_set_aside_and_block_the_contract(
    fresh_db_url: str, backend: str, tmp_path: Path
) -> None:
    settings = await open_legacy_store(fresh_db_url, tmp_path)
    org = legacy_uuid(LEGACY_ORG)
    rows = legacy_rows(6)
    other = uuid.uuid4()
    async with ExecStore.open(settings) as store:
        async with store.unit(other) as uow:
            await uow.reference.add_organization("other")
            wf = await uow.reference.add_workflow("theirs")
            theirs = (await uow.jobs.create(workflow_id=wf.id)).id
        rows[2]["job_id"] = str(theirs).upper()  # another organization's job
        await insert_legacy(store, rows, raw_details="{not json" if backend == "sqlite" else None)
        report = await backfill_audit(store.sessions, store.archives, batch_size=4)
        reasons = {aside.key: aside.reason for aside in report.set_aside}
        assert "another organization" in reasons[rows[2]["id"]]
        if backend == "sqlite":
            assert "JSONDecodeError" in reasons[rows[-1]["id"]]
        assert report.counts["moved"] == len(rows) - len(reasons)
        assert await count_remaining(store.sessions) == len(reasons)
        again = await backfill_audit(store.sessions, store.archives)  # resumable: only the rest
        assert again.counts["moved"] == 0
        assert len(again.set_aside) == len(reasons)
        verified = await verify_audit(store.sessions, store.archives, organization_id=org)
        assert not verified.needs_attention, verified.set_aside
    with pytest.raises(BackfillIncomplete, match="backfill audit"):
        await migrate(fresh_db_url)
    async with ExecStore.open(settings) as store:
        async with store.engine.begin() as conn:  # the operator fixes the data
            await conn.execute(
                sa.text("UPDATE phi_audit_log_legacy SET job_id = NULL, details = :d"),
                {"d": json.dumps({"fixed": True})},
            )
        fixed = await backfill_audit(store.sessions, store.archives)
        assert fixed.counts["moved"] == len(reasons)
        assert await count_remaining(store.sessions) == 0
    await migrate(fresh_db_url)


def test_the_six_year_floor_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECSTORE_AUDIT_RETENTION_DAYS", str(AUDIT_RETENTION_FLOOR_DAYS - 1))
    with pytest.raises(ConfigurationError, match="EXECSTORE_AUDIT_RETENTION_DAYS"):
        load_settings()
    monkeypatch.setenv("EXECSTORE_AUDIT_RETENTION_DAYS", str(AUDIT_RETENTION_FLOOR_DAYS))
    assert load_settings().audit_retention_days == AUDIT_RETENTION_FLOOR_DAYS
    assert AUDIT_RETENTION_FLOOR_DAYS == 6 * 365 + 2


def test_six_years_after_is_calendar_years() -> None:
    from execstore.audit import six_years_after

    assert six_years_after(dt.datetime(2024, 2, 29)) == dt.datetime(2030, 3, 1)
    start = dt.datetime(2023, 3, 1)
    assert (six_years_after(start) - start).days == 2192  # two leap days in between
    assert all(
        (six_years_after(d) - d).days <= AUDIT_RETENTION_FLOOR_DAYS
        for d in (dt.datetime(2000, 1, 1) + dt.timedelta(days=k) for k in range(0, 3000, 7))
    )


async def test_retention_keeps_young_segments_whatever_the_days(store: Any, org: uuid.UUID) -> None:
    async with store.unit(org) as uow:
        await uow.audit.record_many([access(i) for i in range(5)])
    archived = await archive_audit(store.sessions, store.archives, hot_days=0, organization_id=org)
    assert archived.counts["records"] == 5
    done = await apply_retention(
        store.sessions,
        store.archives,
        "audit",
        days=AUDIT_RETENTION_FLOOR_DAYS,
        organization_id=org,
    )
    assert done.counts["archives"] == 0
    async with store.unit(org) as uow:
        assert len((await uow.audit.query()).items) == 5
    assert org_param(store, org) is not None
