"""README claims about settings and adoption that only an end-to-end run shows.

- ``EXECSTORE_POOL_SIZE`` / ``EXECSTORE_MAX_OVERFLOW`` reach the engine's pool (PostgreSQL);
- ``execstore db stamp`` adopts a database made elsewhere: the legacy schema built without
  Alembic, stamped ``legacy_baseline``, upgraded, then used.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from execstore.cli import app
from execstore.config import load_settings
from execstore.db import create_engine
from execstore.migrations.runner import current_revision, head_revision, schema_diff
from execstore.schema import legacy
from execstore.store import ExecStore


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_pool_settings_reach_the_engine(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECSTORE_POOL_SIZE", "2")
    monkeypatch.setenv("EXECSTORE_MAX_OVERFLOW", "1")
    monkeypatch.setenv("EXECSTORE_POOL_TIMEOUT_SECONDS", "0.5")
    settings = load_settings(database_url=db_url, blob_url=f"file:{tmp_path}")
    async with ExecStore.open(settings) as store, contextlib.AsyncExitStack() as held:
        pool: Any = store.engine.pool
        assert pool.size() == 2
        for _ in range(3):  # two pooled connections and one overflow
            await held.enter_async_context(store.engine.connect())
        with pytest.raises(sa.exc.TimeoutError):
            await held.enter_async_context(store.engine.connect())  # a fourth: none left


async def invoke(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_db_stamp_adopts_a_database_made_elsewhere(fresh_db_url: str, tmp_path: Path) -> None:
    # The orchestration service made this database with its own tooling: no alembic_version.
    org, workflow = str(uuid.uuid4()), str(uuid.uuid4())
    engine = create_engine(load_settings(database_url=fresh_db_url))
    async with engine.begin() as conn:
        await conn.run_sync(legacy.legacy_metadata.create_all)
        await conn.execute(sa.insert(legacy.organizations).values(id=org, name="Acme"))
        await conn.execute(
            sa.insert(legacy.workflows).values(id=workflow, organization_id=org, name="wf")
        )
    await engine.dispose()
    assert await current_revision(fresh_db_url) is None

    stamped = await invoke("db", "stamp", "legacy_baseline", "--url", fresh_db_url)
    assert stamped.exit_code == 0, stamped.output
    assert await current_revision(fresh_db_url) == "legacy_baseline"
    upgraded = await invoke("db", "upgrade", "--url", fresh_db_url)
    assert upgraded.exit_code == 0, upgraded.output
    assert await current_revision(fresh_db_url) == head_revision()
    assert await schema_diff(fresh_db_url) == []

    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path / 'blobs'}")
    async with ExecStore.open(settings) as store:
        async with store.unit(uuid.UUID(org)) as uow:
            assert (await uow.reference.organization()).name == "Acme"
            job = await uow.jobs.create(workflow_id=uuid.UUID(workflow))
            await uow.results.save(job.id, {"success": True})
        async with store.unit(uuid.UUID(org)) as uow:
            detail = await uow.results.detail(job.id)
    assert detail is not None
    assert detail.output == {"success": True}
