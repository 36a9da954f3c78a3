"""``execstore db``: each step reported as applied, where a failed upgrade leaves the
database, usage errors for unknown revisions, ``current`` failing when behind, history,
heads, ``--sql`` that changes nothing, and ``--json`` on each (both backends)."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from typer.testing import CliRunner

from execstore.cli import app
from execstore.migrations.runner import current_revision, head_revision, revisions
from support.migration_db import count_rows, insert_any_row

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), terminal_width=400)
    return result.exit_code, result.output


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_upgrade_reports_each_step_and_where_a_failure_leaves_the_database(
    fresh_db_url: str,
) -> None:
    names = [r.revision for r in revisions()]
    middle = names.index("compact_phi_audit")
    code, out = _invoke("db", "upgrade", "compact_phi_audit", "--url", fresh_db_url)
    assert code == 0, out
    shown = [line.strip() for line in out.splitlines() if " -> " in line]
    expected = [f"base (empty) -> {names[0]}"] + [
        f"{a} -> {b}" for a, b in itertools.pairwise(names[: middle + 1])
    ]
    assert shown == expected
    # A legacy RAG row that no backfill verified: a contract step above refuses.
    asyncio.run(insert_any_row(fresh_db_url, "execution_rag_rules_legacy"))
    code, out = _invoke("db", "upgrade", "--url", fresh_db_url)
    assert code == 1
    now = asyncio.run(current_revision(fresh_db_url))
    assert now is not None
    assert now != head_revision()
    applied = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert applied == [
        f"{a} -> {b}"
        for a, b in zip(names[middle : names.index(now)], names[middle + 1 :], strict=False)
    ]
    flat = " ".join(out.split())
    assert f"the database is now at {now}" in flat
    assert f"{len(applied)} step(s) applied before it" in flat or (
        not applied and "no step was applied" in flat
    )
    assert asyncio.run(count_rows(fresh_db_url))["execution_rag_rules_legacy"] == 1


def test_an_unknown_revision_is_a_usage_error_listing_the_shipped_ones(fresh_db_url: str) -> None:
    for command in (["upgrade", "no_such_rev"], ["downgrade", "no_such_rev"], ["stamp", "x"]):
        code, out = _invoke("db", *command, "--url", fresh_db_url)
        assert code == 2, out
        flat = " ".join(out.split())  # stderr wraps at 80 columns
        assert "the package ships (oldest first): legacy_baseline, add_varchar_limits," in flat
        assert "unexpected" not in flat


def test_current_names_the_database_exits_3_when_behind_and_creates_nothing(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXECSTORE_DATABASE_URL", raising=False)
    code, out = _invoke("db", "current")
    assert code == 3
    assert "database sqlite+aiosqlite:///.execstore/execstore.db" in out
    assert "revision: base (empty)" in out
    assert list(tmp_path.iterdir()) == []  # no .execstore/ made by a look
    code, out = _invoke("db", "current", "--json")
    assert code == 3
    assert _last_json(out) == {
        "database": "sqlite+aiosqlite:///.execstore/execstore.db",
        "revision": "base (empty)",
        "head": head_revision(),
        "up_to_date": False,
    }


def test_current_at_head_exits_0_and_hides_the_password(db_url: str, backend: str) -> None:
    url = db_url.replace("postgres@", "postgres:secret@") if backend == "postgres" else db_url
    code, out = _invoke("db", "current", "--json", "--url", url)
    assert code == 0, out
    said = _last_json(out)
    assert said["up_to_date"] is True
    assert said["revision"] == head_revision()
    assert "secret" not in out


def test_upgrade_sql_prints_the_statements_and_changes_nothing(fresh_db_url: str) -> None:
    code, out = _invoke("db", "upgrade", "add_varchar_limits", "--url", fresh_db_url)
    assert code == 0, out
    code, out = _invoke("db", "upgrade", "--sql", "--url", fresh_db_url)
    assert code == 0, out
    assert "CREATE TABLE execution_rag_contexts" in out or "CREATE TABLE" in out
    assert "-- nothing was changed" in out
    code, out = _invoke("db", "current", "--json", "--url", fresh_db_url)
    assert _last_json(out)["revision"] == "add_varchar_limits"
    code, out = _invoke("db", "upgrade", "--sql", "--json", "--url", fresh_db_url)
    assert code == 0, out
    statements = _last_json(out)["statements"]
    assert any("UPDATE alembic_version" in s for s in statements)


@pytest.mark.parametrize("as_json", [False, True])
def test_history_and_heads(as_json: bool) -> None:
    flags = ["--json"] if as_json else []
    code, out = _invoke("db", "history", *flags)
    assert code == 0
    shipped = [r.revision for r in revisions()]
    if as_json:
        assert [r["revision"] for r in _last_json(out)["revisions"]] == shipped
    else:
        lines = out.strip().splitlines()
        assert lines[0].startswith("base (empty) -> legacy_baseline  the pre-optimization")
        assert [line.split()[2] for line in lines[1:]] == shipped[1:]
    code, out = _invoke("db", "heads", *flags)
    assert code == 0
    assert (_last_json(out)["heads"] if as_json else out.split()) == [head_revision()]
