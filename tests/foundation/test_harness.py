"""The test harness can bring up its own PostgreSQL when none is reachable."""

from __future__ import annotations

import asyncpg
import pytest

from support.postgres import throwaway_cluster


@pytest.mark.postgres
async def test_throwaway_cluster_starts_answers_and_goes_away() -> None:
    with throwaway_cluster() as server:
        assert server.port != 5432
        conn = await asyncpg.connect(server.dsn())
        try:
            assert await conn.fetchval("SELECT 1 + 1") == 2
        finally:
            await conn.close()
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(server.dsn(), timeout=3)
