"""Every downgrade guarded, every table: what each revision creates, and what going down
does with the rows in it (issue 17.5), on PostgreSQL and SQLite.

The cases are derived from the revisions' own declarations (``NEW_TABLES``,
``RENAMED``, ``DROPPED``, ``DOWNGRADE_REFUSED_WITH_ROWS``, ``DOWNGRADE_MOVES_ROWS``),
and the declarations are held to what the revisions really do, so a table added
later without a guard fails here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.errors import DowngradeRefused
from execstore.migrations import runner
from execstore.migrations.runner import current_revision, downgrade, downgrade_plan, migrate
from support.migration_db import (
    REVISIONS,
    Templates,
    count_rows,
    engine_for,
    insert_any_row,
    insert_rows_everywhere,
    revision_module,
    schema_of,
    state_of,
)
from support.schema_snapshot import differences


def _below(revision: str) -> str:
    return REVISIONS[REVISIONS.index(revision) - 1] if revision != REVISIONS[0] else "base"


def _declared(revision: str, name: str, default: Any = ()) -> Any:
    return getattr(revision_module(revision), name, default)


GUARDED = [
    pytest.param(revision, table, id=f"{revision}-{table}")
    for revision in REVISIONS
    for table in _declared(revision, "NEW_TABLES")
]
RENAMES = [
    pytest.param(revision, old, new, id=f"{revision}-{new}")
    for revision in REVISIONS
    for old, new in _declared(revision, "RENAMED", {}).items()
]
CONTRACTS = [r for r in REVISIONS if _declared(r, "contract", False)]


def _named(error: pytest.ExceptionInfo[DowngradeRefused]) -> list[str]:
    found = re.search(
        r"would drop rows the older schema has no place for, in (.*); archive", str(error.value)
    )
    assert found is not None, str(error.value)
    return found.group(1).split(", ")


def test_the_revisions_declare_their_tables() -> None:
    """Cases are derived from these declarations: they must exist and be consistent."""
    assert GUARDED, "no revision declares NEW_TABLES"
    for revision in REVISIONS:
        module = revision_module(revision)
        new = tuple(getattr(module, "NEW_TABLES", ()))
        refused = set(getattr(module, "DOWNGRADE_REFUSED_WITH_ROWS", ()))
        assert hasattr(module, "DOWNGRADE_REFUSED_WITH_ROWS"), revision
        # Every table a revision creates is guarded: its downgrade would drop it.
        assert refused == set(new), revision
        assert set(getattr(module, "DOWNGRADE_REFUSED_WHERE", {})) <= refused, revision
        assert set(getattr(module, "DOWNGRADE_MOVES_ROWS", {})) <= set(new), revision
        assert len(set(new)) == len(new), revision


@pytest.mark.parametrize("revision", REVISIONS)
def test_a_revision_creates_renames_and_drops_exactly_what_it_declares(
    templates: Templates, revision: str
) -> None:
    before = templates.snapshots[_below(revision)]["tables"]
    after = templates.snapshots[revision]["tables"]
    renamed = _declared(revision, "RENAMED", {})
    kept = set(before) - set(renamed) - set(_declared(revision, "DROPPED"))
    new = set(_declared(revision, "NEW_TABLES"))
    assert not new & kept, "a new table cannot replace one that stays"
    assert set(after) == kept | set(renamed.values()) | new
    for old, name in renamed.items():  # the same table under its new name
        assert after[name]["columns"] == before[old]["columns"]


@pytest.mark.parametrize(("revision", "table"), GUARDED)
async def test_a_row_in_any_table_a_revision_created_refuses_its_downgrade(
    templates: Templates, revision: str, table: str
) -> None:
    async with templates.at(revision, checked=True) as url:
        await insert_any_row(url, table)
        with pytest.raises(DowngradeRefused, match=f"going below {revision} ") as refused:
            await downgrade(url, _below(revision))
        assert _named(refused) == [table]

        # Refused before any step ran: same revision, same schema, the one row still there.
        after = await state_of(url)
        assert (after["revision"], after["schema"]) == (revision, templates.snapshots[revision])
        assert {t: n for t, n in after["rows"].items() if n} == {table: 1}


@pytest.mark.parametrize("revision", REVISIONS)
async def test_with_its_tables_empty_a_revision_goes_down_and_up_again(
    templates: Templates, revision: str
) -> None:
    """Down gives back exactly the schema below it, up exactly its own (partitions too)."""
    below = _below(revision)
    async with templates.at(revision) as url:
        await downgrade(url, below)
        assert await current_revision(url) == (None if below == "base" else below)
        assert differences(await schema_of(url), templates.snapshots[below]) == []
        await migrate(url, revision)
        assert await current_revision(url) == revision
        assert differences(await schema_of(url), templates.snapshots[revision]) == []


@pytest.mark.parametrize(("revision", "old", "new"), RENAMES)
async def test_rows_of_a_renamed_legacy_table_go_down_with_it(
    templates: Templates, revision: str, old: str, new: str
) -> None:
    async with templates.at(revision) as url:
        row = await insert_any_row(url, new)
        await downgrade(url, _below(revision))
        engine = engine_for(url)
        async with engine.connect() as conn:
            ids = (await conn.execute(sa.text(f"SELECT id FROM {old}"))).scalars().all()
        await engine.dispose()
        assert ids == [row["id"]]
        await migrate(url, revision)
        assert (await count_rows(url))[new] == 1


async def _line_with_its_step(url: str) -> tuple[int, dict[str, Any]]:
    """A log line of a job (its organization and workflow too) and the step it names."""
    org = (await insert_any_row(url, "organizations"))["id"]
    workflow = (await insert_any_row(url, "workflows", organization_id=org))["id"]
    job = await insert_any_row(url, "jobs", organization_id=org, workflow_id=workflow)
    step = await insert_any_row(
        url, "execution_log_steps", workflow_id=workflow, step_index=7, name="Submit claim"
    )
    engine = engine_for(url)
    async with engine.connect() as conn:
        step_id = (await conn.execute(sa.text("SELECT id FROM execution_log_steps"))).scalar_one()
    await engine.dispose()
    line = await insert_any_row(
        url,
        "execution_log_partitioned",
        job_id=job["id"],
        step_id=step_id,
        level=30,
        message="retrying portal",
    )
    return step["step_index"], line


async def test_log_lines_go_down_into_the_legacy_table_with_their_step(
    templates: Templates,
) -> None:
    async with templates.at("partition_execution_logs") as url:
        step_index, line = await _line_with_its_step(url)
        await downgrade(url, "normalize_rag_rules")
        engine = engine_for(url)
        async with engine.connect() as conn:
            moved = (
                await conn.execute(
                    sa.text(
                        "SELECT id, job_id, step_index, step_name, level, message "
                        "FROM execution_log"
                    )
                )
            ).all()
        await engine.dispose()
        assert len(moved) == 1
        assert moved[0].id.startswith("log-")
        assert moved[0].job_id == str(line["job_id"])
        assert (moved[0].step_index, moved[0].step_name) == (step_index, "Submit claim")
        assert (moved[0].level, moved[0].message) == ("warn", "retrying portal")
        await migrate(url, "partition_execution_logs")


async def test_rows_a_lower_revision_would_meet_later_are_refused_before_any_step(
    templates: Templates,
) -> None:
    """The guard of legacy_baseline follows its tables up the chain: a legacy row renamed
    by slim_execution_metadata, log lines partition_execution_logs would move back."""
    async with templates.at("compact_phi_audit") as url:
        await insert_any_row(url, "execution_metadata_legacy")
        schema = await schema_of(url)
        with pytest.raises(DowngradeRefused, match="going below legacy_baseline ") as refused:
            await downgrade(url, "base")
        assert _named(refused) == ["execution_metadata_legacy (as execution_metadata)"]
        assert await current_revision(url) == "compact_phi_audit"
        assert differences(await schema_of(url), schema) == []

    head = REVISIONS[-1]
    async with templates.private(head) as url:
        await _line_with_its_step(url)
        rows = await count_rows(url)
        with pytest.raises(DowngradeRefused, match="going below legacy_baseline ") as refused:
            await downgrade_plan(url, "base")
        named = _named(refused)  # the job, its organization and workflow, and the line
        assert "execution_log_partitioned (as execution_log)" in named
        assert "execution_log_steps" not in named  # goes down inside the line
        # Down to just above the baseline the lines move back and nothing is refused.
        await downgrade(url, "legacy_baseline")
        assert (await count_rows(url))["execution_log"] == rows["execution_log_partitioned"]


async def test_a_step_refusing_on_its_own_rolls_every_step_back(
    templates: Templates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the runner's check, the baseline's own guard refuses after every other
    step ran: the whole downgrade is one transaction, so nothing stays changed."""
    head = REVISIONS[-1]
    async with templates.at(head) as url:
        await insert_any_row(url, "organizations")
        schema, rows = await schema_of(url), await count_rows(url)
        monkeypatch.setattr(runner, "_check_downgrade_guards", lambda conn, target: None)
        with pytest.raises(DowngradeRefused, match="going below legacy_baseline ") as refused:
            await downgrade(url, "base")
        assert _named(refused) == ["organizations"]
        assert await current_revision(url) == head
        assert differences(await schema_of(url), schema) == []
        assert await count_rows(url) == rows


# A RAG context with one payer, modifier and rule (used), so the refill has work to do.
_USED_AT = dt.datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=dt.UTC)
_RAG = {
    # The refill records the RAG backfill complete again: the same one row it replaces.
    "backfill_completions": {"name": "rag", "details": {"legacy_rows": 0}},
    "rag_payer_catalog": {"id": 1, "payer_name": "Aetna", "payer_id": "60054", "scenario": "s"},
    "rag_modifier_catalog": {"id": 1, "code": "25", "scenario": "separate E/M"},
    "rag_rule_catalog": {
        "id": 1,
        "rule_id": "R-1",
        "rule_type": "billing",
        "body": b"j" + json.dumps(["needs 25", "append 25"]).encode(),
    },
    "execution_rag_context": {
        "payer_entry_ids": [1],
        "modifier_entry_ids": [1],
        "rule_entry_ids": [1],
        "rule_scores": [9000],
        "average_score": 8125,
        "total_rules_used": 0,
        "rag_retrieval_time_ms": 187,
        "total_rules_retrieved": 1,
    },
    "execution_rag_rule_uses": {
        "position": 0,
        "counted": True,
        "step_index": 3,
        "used_at": _USED_AT,
        "usage_reason": "modifier missing",
    },
}


@pytest.mark.parametrize("revision", CONTRACTS)
async def test_a_contract_goes_down_and_up_with_rows_everywhere_losing_none(
    templates: Templates, revision: str
) -> None:
    """Going down a contract revision re-creates its legacy table (empty, or refilled
    from the normalized rows for RAG) and drops nothing; going up again needs no backfill."""
    below = _below(revision)
    async with templates.at(revision) as url:
        written = await insert_rows_everywhere(url, _RAG)
        rows = await count_rows(url)
        assert set(rows) == set(written)
        assert set(rows.values()) == {1}

        await downgrade(url, below)
        down = await count_rows(url)
        recreated = set(_declared(revision, "DROPPED"))
        assert {t: n for t, n in down.items() if t not in recreated} == rows
        refilled = 1 if revision == "contract_rag_rules" else 0
        assert {t: down[t] for t in recreated} == {t: refilled for t in recreated}
        if refilled:
            await _assert_refilled(url, written)

        await migrate(url, revision)
        assert await count_rows(url) == rows


async def _assert_refilled(url: str, written: dict[str, dict[str, Any]]) -> None:
    """The legacy row holds the context in the orchestration service's JSON, verified."""
    context = written["execution_rag_context"]
    engine = engine_for(url)
    async with engine.connect() as conn:
        legacy = (await conn.execute(sa.text("SELECT * FROM execution_rag_rules_legacy"))).one()
        verified = (
            await conn.execute(sa.text("SELECT legacy_id FROM rag_backfill_verified"))
        ).scalar_one()
        completion = (
            await conn.execute(sa.text("SELECT name, details FROM backfill_completions"))
        ).one()
    await engine.dispose()
    assert verified == legacy.id
    details = completion.details
    details = json.loads(details) if isinstance(details, str) else details
    assert (completion.name, details["legacy_rows"]) == ("rag", 1)
    assert (legacy.job_id, legacy.organization_id) == (
        str(context["job_id"]),
        str(context["organization_id"]),
    )
    loaded = {  # JSON text on SQLite, decoded by asyncpg
        k: json.loads(v) if isinstance(v := getattr(legacy, k), str) else v
        for k in ("payers", "modifiers", "rules")
    }
    assert loaded["payers"] == [{"payerName": "Aetna", "payerId": "60054", "scenario": "s"}]
    assert loaded["modifiers"] == [{"code": "25", "scenario": "separate E/M"}]
    assert loaded["rules"] == [
        {
            "ruleId": "R-1",
            "ruleType": "billing",
            "condition": "needs 25",
            "action": "append 25",
            "retrievalScore": 0.9,
            "wasUsed": True,
            "usedAtStepIndex": 3,
            "usedAtTimestamp": "2026-03-04T05:06:07.891Z",
            "usageReason": "modifier missing",
        }
    ]
    assert (legacy.rag_retrieval_time_ms, legacy.total_rules_retrieved) == (187, 1)
    assert legacy.total_rules_used == 1  # the counted use
    assert Decimal(str(legacy.average_retrieval_score)) == Decimal("0.8125")
