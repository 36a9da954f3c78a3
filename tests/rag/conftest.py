"""RAG test helpers: databases before the contract step (the legacy table still there),
jobs in fresh organizations, and realistic contexts."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from support.postgres import PgServer, create_database, drop_database

MODES = ["legacy", "dual_write_read_legacy", "dual_write_read_normalized", "normalized"]


def pre_contract() -> str:
    """The revision just below contract_rag_rules: the legacy JSON table still exists."""
    from alembic.script import ScriptDirectory

    from execstore.migrations.runner import alembic_config

    rev = ScriptDirectory.from_config(alembic_config()).get_revision("contract_rag_rules")
    assert rev is not None
    return str(rev.down_revision)


@pytest.fixture(scope="session")
async def _rag_pg(pg_server: PgServer) -> AsyncIterator[str]:
    from execstore.migrations.runner import migrate

    name = await create_database(pg_server, prefix="execstore_rag")
    url = pg_server.url(name)
    await migrate(url, pre_contract())
    yield url
    await drop_database(pg_server, name)


@pytest.fixture(scope="session")
async def _rag_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    from execstore.migrations.runner import migrate

    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('rag') / 'rag.db'}"
    await migrate(url, pre_contract())
    return url


@pytest.fixture
def rag_url(backend: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("_rag_pg" if backend == "postgres" else "_rag_sqlite"))


@pytest.fixture
async def rag_store(rag_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    """An ExecStore on a database that still has the legacy RAG table."""
    from execstore.config import load_settings
    from execstore.store import ExecStore

    settings = load_settings(database_url=rag_url, blob_url=f"file:{tmp_path / 'blobs'}")
    async with ExecStore.open(settings) as opened:
        yield opened


WHEN = dt.datetime(2025, 11, 3, 9, 30, 15, 123000, tzinfo=dt.UTC)


def make_context(
    rules: int = 4, *, at: dt.datetime = WHEN, prefix: str = "R", payers: int = 2
) -> dict[str, Any]:
    """A context in the orchestration service's camelCase shape."""
    return {
        "retrievedAt": at.isoformat(),
        "ragRetrievalTimeMs": 187,
        "totalRulesRetrieved": rules,
        "totalRulesUsed": 0,
        "averageRetrievalScore": 0.8125,
        "payers": [
            {"payerName": f"Payer {i}", "payerId": f"P-{i:03d}", "scenario": f"claim path {i}"}
            for i in range(payers)
        ],
        "modifiers": [
            {"code": "25", "scenario": "separate E/M on the day of a procedure"},
            {"code": "59", "scenario": "distinct procedural service"},
        ],
        "rules": [
            {
                "ruleId": f"{prefix}-{i:04d}",
                "ruleType": ["billing", "coding", "eligibility"][i % 3],
                "condition": f"payer requires modifier {i} when CPT 9921{i % 10} — ünïcode ✓ " * 3,
                "action": f"append modifier and attach note {i}",
                "retrievalScore": round(0.95 - i * 0.01, 4),
            }
            for i in range(rules)
        ],
    }


async def count_rows(store: Any, table: str) -> int:
    import sqlalchemy as sa

    async with store.sessions() as session:
        return int(await session.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)
