"""The Citus cluster the suite starts works, and execstore's schema migrates on it."""

from __future__ import annotations

import uuid

import asyncpg

from support.citus import CitusCluster


async def test_migrates_to_head_and_distributes_a_table(citus: CitusCluster, citus_db: str) -> None:
    from execstore.migrations.runner import current_revision, head_revision, migrate

    url = citus.coordinator.url(citus_db)
    await migrate(url)
    assert await current_revision(url) == head_revision()

    conn = await asyncpg.connect(citus.coordinator.dsn(citus_db))
    try:
        active = await conn.fetch(
            "SELECT node_name, node_port FROM citus_get_active_worker_nodes()"
        )
        assert sorted((r["node_name"], r["node_port"]) for r in active) == sorted(
            (w.host, w.port) for w in citus.workers
        )

        await conn.execute("CREATE TABLE citus_probe (organization_id uuid NOT NULL, n int)")
        await conn.execute("SELECT create_distributed_table('citus_probe', 'organization_id')")
        orgs = [uuid.uuid4() for _ in range(40)]
        await conn.executemany(
            "INSERT INTO citus_probe VALUES ($1, $2)", [(o, i) for i, o in enumerate(orgs)]
        )
        rows = await conn.fetch("SELECT organization_id, n FROM citus_probe ORDER BY n")
        assert [(r["n"], r["organization_id"]) for r in rows] == list(enumerate(orgs))
        # The rows really are spread: both workers hold shards with rows of the table.
        per_node = await conn.fetch(
            """
            SELECT nodeport, sum(result::bigint) AS n
            FROM run_command_on_placements('citus_probe', 'SELECT count(*) FROM %s')
            GROUP BY nodeport
            """
        )
        counts = {r["nodeport"]: r["n"] for r in per_node}
        assert set(counts) == {w.port for w in citus.workers}
        assert all(n > 0 for n in counts.values())
        assert sum(counts.values()) == 40
        # One organization's rows are read from one shard.
        one = await conn.fetchval("SELECT n FROM citus_probe WHERE organization_id = $1", orgs[7])
        assert one == 7
    finally:
        await conn.close()


async def test_an_added_worker_takes_shards_with_rows_intact(
    citus: CitusCluster, citus_db: str
) -> None:
    conn = await asyncpg.connect(citus.coordinator.dsn(citus_db))
    try:
        await conn.execute(
            "CREATE TABLE citus_probe"
            " (organization_id uuid, n int, PRIMARY KEY (organization_id, n))"
        )
        await conn.execute("SELECT create_distributed_table('citus_probe', 'organization_id')")
        orgs = [uuid.uuid4() for _ in range(60)]
        await conn.executemany(
            "INSERT INTO citus_probe VALUES ($1, $2)", [(o, i) for i, o in enumerate(orgs)]
        )

        added = await citus.add_worker()

        active = await conn.fetch("SELECT node_port FROM citus_get_active_worker_nodes()")
        assert added.port in {r["node_port"] for r in active}
        assert len(active) == len(citus.workers)
        await conn.execute(
            "SELECT rebalance_table_shards('citus_probe', shard_transfer_mode => 'block_writes')"
        )
        moved = await conn.fetchval(
            "SELECT count(*) FROM citus_shards WHERE table_name = 'citus_probe'::regclass"
            " AND nodeport = $1",
            added.port,
        )
        assert moved > 0
        rows = await conn.fetch("SELECT organization_id, n FROM citus_probe ORDER BY n")
        assert [(r["n"], r["organization_id"]) for r in rows] == list(enumerate(orgs))
    finally:
        await conn.close()
