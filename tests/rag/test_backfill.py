"""Backfill and contract on a legacy database with text ids (cuids, upper case, braces)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from execstore.cli import app
from execstore.config import load_settings
from execstore.db import create_engine
from execstore.errors import BackfillIncomplete, ConfigurationError
from execstore.ids import legacy_uuid
from execstore.migrations.runner import current_revision, downgrade, migrate
from execstore.rag import backfill_rag, count_remaining
from execstore.rag.format import context_from_legacy
from execstore.schema import legacy
from execstore.schema.rag import execution_rag_rules_legacy as legacy_table
from execstore.store import ExecStore

from .conftest import make_context, pre_contract

ORG = "ckorg0000000001legacy"  # a cuid
JOB_IDS = {
    "cuid": "cljobx9p2000008l4c3h2fq7k",
    "upper": str(uuid.uuid4()).upper(),
    "braced": "{" + str(uuid.uuid4()) + "}",
    "plain": str(uuid.uuid4()),
    "bad_payer": "cljobbadpayer0000000001",
    "twice": "cljobtwice00000000000001",
}


def _legacy_json(ctx: dict[str, Any]) -> dict[str, Any]:
    return {
        "payers": ctx["payers"],
        "modifiers": ctx["modifiers"],
        "rules": ctx["rules"],
        "rag_retrieval_time_ms": ctx["ragRetrievalTimeMs"],
        "total_rules_retrieved": ctx["totalRulesRetrieved"],
        "total_rules_used": 0,
        "average_retrieval_score": ctx["averageRetrievalScore"],
    }


async def _legacy_database(url: str) -> None:
    """A revision-0 database with RAG rows (good and bad), upgraded to just before contract."""
    await migrate(url, "legacy_baseline")
    engine = create_engine(load_settings(database_url=url), foreign_keys=False)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(legacy.organizations), [{"id": ORG, "name": "Acme"}])
        await conn.execute(
            sa.insert(legacy.workflows), [{"id": "clwf1", "organization_id": ORG, "name": "W"}]
        )
        await conn.execute(
            sa.insert(legacy.jobs),
            [
                {"id": j, "organization_id": ORG, "workflow_id": "clwf1", "credential_ids": []}
                for j in JOB_IDS.values()
            ],
        )
        rows = []
        for i, (kind, job) in enumerate(JOB_IDS.items()):
            ctx = _legacy_json(make_context(3 + i, prefix=kind))
            if kind == "bad_payer":
                ctx["payers"] = [{"name": "Aetna"}]  # no payerName / payerId / scenario
            if kind == "twice":
                ctx["rules"].append(dict(ctx["rules"][0]))
            if kind == "upper":  # snake_case keys are read too
                ctx["rules"] = [
                    {
                        "rule_id": r["ruleId"],
                        "rule_type": r["ruleType"],
                        "condition": r["condition"],
                        "action": r["action"],
                        "retrieval_score": r["retrievalScore"],
                    }
                    for r in ctx["rules"]
                ]
            rows.append({"id": f"clrag{i:04d}", "job_id": job, "organization_id": ORG, **ctx})
        await conn.execute(sa.insert(legacy.execution_rag_rules), rows)
    await engine.dispose()
    await migrate(url, pre_contract())
    # A row whose job is gone (add_varchar_limits dropped the legacy table's job FK).
    engine = create_engine(load_settings(database_url=url))
    async with engine.begin() as conn:
        orphan = _legacy_json(make_context(1, prefix="orphan"))
        await conn.execute(
            sa.insert(legacy_table),
            [{"id": "clragorphan", "job_id": "cljobgone", "organization_id": ORG, **orphan}],
        )
    await engine.dispose()


def _aside(report: Any) -> dict[str, str]:
    return {s.key: s.reason for s in report.set_aside}


async def test_backfill_then_contract_on_a_legacy_database(
    fresh_db_url: str, backend: str, tmp_path: Path
) -> None:
    await _legacy_database(fresh_db_url)
    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path}")
    org = legacy_uuid(ORG)

    with pytest.raises(BackfillIncomplete, match=r"holds 7 row.s. and the rag backfill has not"):
        await migrate(fresh_db_url)
    assert await current_revision(fresh_db_url) == pre_contract()

    async with ExecStore.open(settings) as store:
        # A job saved in a dual-write mode is already normalized: found and verified.
        async with store.unit(org, rag_mode="dual_write_read_legacy") as uow:
            wf = (await uow.jobs.get(legacy_uuid(JOB_IDS["plain"]))).workflow_id
            fresh = (await uow.jobs.create(workflow_id=wf)).id
            await uow.rag.save(fresh, make_context(2, prefix="dual"))

        workers = 3 if backend == "postgres" else 1
        report = await backfill_rag(store.sessions, batch_size=2, workers=workers)
        assert (report.counts["moved"], report.counts["already_normalized"]) == (4, 1)
        aside = _aside(report)
        assert set(aside) == {"clrag0004", "clrag0005", "clragorphan"}
        assert "payer_name" in aside["clrag0004"]
        assert "appears twice" in aside["clrag0005"]
        assert "does not exist" in aside["clragorphan"]
        assert (report.counts["remaining"], report.details["complete"]) == (3, False)

        again = await backfill_rag(store.sessions, batch_size=2)
        moved = (again.counts["moved"], again.counts["already_normalized"])
        assert moved == (0, 0)  # verified rows are skipped
        assert set(_aside(again)) == set(aside)  # bad rows are still there, untouched

        for kind in ("cuid", "upper", "braced", "plain"):
            async with store.unit(org, rag_mode="normalized") as uow:
                got = await uow.rag.get(legacy_uuid(JOB_IDS[kind]))
            async with store.unit(org, rag_mode="dual_write_read_legacy") as uow:
                assert got is not None
                assert got == await uow.rag.get(legacy_uuid(JOB_IDS[kind]))
                assert got.rules[0].rule_id == f"{kind}-0000"

        # Fix the data, as an operator would, and run again.
        async with store.sessions() as session, session.begin():
            good = [{"payerName": "Aetna", "payerId": "A", "scenario": "s"}]
            await session.execute(
                sa.update(legacy_table).where(legacy_table.c.id == "clrag0004").values(payers=good)
            )
            await session.execute(
                sa.delete(legacy_table).where(legacy_table.c.id.in_(["clrag0005", "clragorphan"]))
            )
        with pytest.raises(BackfillIncomplete, match=r"holds 6 row.s. and the rag backfill"):
            await migrate(fresh_db_url)
        final = await backfill_rag(store.sessions)
        assert final.counts["moved"] == 1
        assert final.set_aside == []
        assert (final.counts["remaining"], final.details["complete"]) == (0, True)

        # A legacy-mode write after the backfill un-verifies that row.
        async with store.unit(org, rag_mode="legacy") as uow:
            await uow.rag.mark_rule_used(legacy_uuid(JOB_IDS["cuid"]), "cuid-0001", 4, "late")
        assert await count_remaining(store.sessions) == 1
        differs = await backfill_rag(store.sessions)
        assert "differs" in differs.set_aside[0].reason
        assert differs.details["complete"] is False
        replaced = await backfill_rag(store.sessions, replace_differing=True)
        assert replaced.counts["moved"] == 1
        assert replaced.details["complete"] is True

    await migrate(fresh_db_url)  # the contract step runs now
    async with ExecStore.open(settings) as store:
        async with store.unit(org) as uow:
            got = await uow.rag.get(legacy_uuid(JOB_IDS["cuid"]))
            assert got is not None
            assert got.rules[1].usage_reason == "late"
        for mode in ("legacy", "dual_write_read_legacy", "dual_write_read_normalized"):
            with pytest.raises(ConfigurationError, match="contract_rag_rules"):
                async with store.unit(org, rag_mode=mode):
                    pass
    with pytest.raises(ConfigurationError, match="EXECSTORE_RAG_MODE=legacy"):
        async with ExecStore.open(
            load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path}", rag_mode="legacy")
        ):
            pass

    # Going down refills the legacy table from the normalized contexts.
    await downgrade(fresh_db_url, pre_contract())
    async with ExecStore.open(settings) as store:
        async with store.unit(org, rag_mode="dual_write_read_legacy") as uow:
            legacy_got = await uow.rag.get(legacy_uuid(JOB_IDS["cuid"]))
            assert legacy_got == got
            assert (await uow.rag.get(fresh)) is not None
        assert await count_remaining(store.sessions) == 0
    await migrate(fresh_db_url)  # the refill recorded the backfill complete


async def test_going_below_normalize_refuses_while_the_normalized_tables_hold_rows(
    fresh_db_url: str, tmp_path: Path
) -> None:
    """Even a context the legacy table holds too (dual write): the operator deletes the
    normalized rows knowingly; the legacy row then survives the downgrade."""
    from execstore.errors import DowngradeRefused

    await migrate(fresh_db_url, pre_contract())
    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path}")
    org = uuid.uuid4()
    async with (
        ExecStore.open(settings) as store,
        store.unit(org, rag_mode="dual_write_read_legacy") as uow,
    ):
        await uow.reference.add_organization("o")
        wf = await uow.reference.add_workflow("w")
        job = (await uow.jobs.create(workflow_id=wf.id)).id
        await uow.rag.save(job, make_context(2))
        saved = await uow.rag.get(job)
    with pytest.raises(DowngradeRefused, match="execution_rag_context, rag_payer_catalog"):
        await downgrade(fresh_db_url, "add_varchar_limits")
    assert await current_revision(fresh_db_url) == pre_contract()

    engine = create_engine(settings)
    async with engine.begin() as conn:
        for table in (
            "execution_rag_context",
            "rag_payer_catalog",
            "rag_modifier_catalog",
            "rag_rule_catalog",
        ):
            await conn.execute(sa.text(f"DELETE FROM {table}"))
    await engine.dispose()
    await downgrade(fresh_db_url, "add_varchar_limits")
    engine = create_engine(settings)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(legacy.execution_rag_rules))).mappings().all()
    await engine.dispose()
    assert [context_from_legacy(row) for row in rows] == [saved]


async def invoke(url: str, tmp_path: Path, *args: str) -> Any:
    argv = ["backfill", "rag", *args, "--url", url, "--blob-url", f"file:{tmp_path}"]
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


async def test_cli_reports_rows_set_aside_and_exits_3(fresh_db_url: str, tmp_path: Path) -> None:
    await _legacy_database(fresh_db_url)
    dry = await invoke(fresh_db_url, tmp_path, "--json", "--dry-run")
    assert dry.exit_code == 3, dry.output
    [would] = json.loads(dry.stdout.strip().splitlines()[-1])["reports"]
    assert (would["dry_run"], would["counts"]["moved"], would["counts"]["remaining"]) == (
        True,
        4,
        7,
    )
    result = await invoke(fresh_db_url, tmp_path, "--json", "--batch-size", "3")
    assert result.exit_code == 3, result.output
    [data] = json.loads(result.stdout.strip().splitlines()[-1])["reports"]
    assert (data["counts"]["moved"], data["counts"]["remaining"]) == (4, 3)
    assert data["details"]["complete"] is False
    assert {s["key"] for s in data["set_aside"]} == {"clrag0004", "clrag0005", "clragorphan"}
    table = await invoke(fresh_db_url, tmp_path)
    assert table.exit_code == 3
    assert "clragorphan" in table.stdout
    assert "set aside (left as they are" in table.stdout
    assert "remaining" in table.stdout


def test_legacy_json_is_read_in_either_case() -> None:
    camel = {
        "ruleId": "a",
        "ruleType": "t",
        "condition": "c",
        "action": "x",
        "retrievalScore": "0.5",
        "wasUsed": True,
        "usedAtTimestamp": "2025-01-02T03:04:05.678Z",
        "usedAtStepIndex": 2,
        "usageReason": "r",
    }
    snake = {
        "rule_id": "a",
        "rule_type": "t",
        "condition": "c",
        "action": "x",
        "retrieval_score": 0.5,
        "was_used": True,
        "used_at": "2025-01-02T03:04:05.678+00:00",
        "used_at_step_index": 2,
        "usage_reason": "r",
    }
    rows = [
        {
            "rules": json.dumps([r]),
            "payers": [],
            "modifiers": None,
            "rag_retrieval_time_ms": 1,
            "total_rules_retrieved": 1,
            "retrieved_at": "2025-01-02T03:04:05",
        }
        for r in (camel, snake)
    ]
    first, second = (context_from_legacy(r) for r in rows)
    assert first == second
    assert first.rules[0].used_at is not None
    assert first.rules[0].used_at.microsecond == 678000
