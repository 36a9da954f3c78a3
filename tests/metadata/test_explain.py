"""At realistic size, listings read one page of rows through the index (PostgreSQL EXPLAIN).

100,000 executions over 50 organizations of skewed sizes (one holds a third), loaded
once per session into a database of their own, final state, VACUUM ANALYZEd. The
statements checked are the ones ``uow.metadata`` actually sends (captured from the
driver), explained with ANALYZE so the row counts are what the executor really read.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from execstore.config import load_settings
from execstore.migrations.runner import migrate
from execstore.store import ExecStore
from support.dashboard_data import generate, load_final_metadata
from support.postgres import PgServer, create_database, drop_database

pytestmark = pytest.mark.postgres

EXECUTIONS = 100_000
PAGE = 50


@pytest.fixture(scope="session")
async def dashboard_url(pg_server: PgServer) -> AsyncIterator[str]:
    name = await create_database(pg_server, prefix="execstore_dashboard")
    url = pg_server.url(name)
    await migrate(url)
    conn = await asyncpg.connect(pg_server.dsn(name))
    try:
        await generate(conn, EXECUTIONS)
        await load_final_metadata(conn)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    yield url
    await drop_database(pg_server, name)


@pytest.fixture
async def dashboard(dashboard_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    settings = load_settings(database_url=dashboard_url, blob_url=f"file:{tmp_path}")
    async with ExecStore.open(settings) as store:
        yield store


async def _orgs_by_size(store: Any) -> list[uuid.UUID]:
    async with store.sessions() as session:
        rows = await session.execute(
            sa.text(
                "SELECT organization_id FROM execution_metadata GROUP BY 1 ORDER BY count(*) DESC"
            )
        )
        return [r[0] for r in rows]


class Captured:
    """The SELECT statements a block of repository calls sent, with their parameters."""

    def __init__(self, store: Any) -> None:
        self.engine = store.engine.sync_engine
        self.sent: list[tuple[str, Any]] = []

    def _record(self, conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            self.sent.append((statement, parameters))

    def __enter__(self) -> Captured:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: Any) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)


async def _explain(store: Any, statement: str, parameters: Any) -> dict[str, Any]:
    async with store.engine.connect() as conn:
        raw = await conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters
        )
        plan = raw.scalar_one()
    return dict((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _scans_of(plan: dict[str, Any], relation: str) -> list[dict[str, Any]]:
    return [n for n in _nodes(plan) if n.get("Relation Name") == relation]


def _rows_read(node: dict[str, Any]) -> int:
    return int(node["Actual Rows"] * node["Actual Loops"]) + int(
        node.get("Rows Removed by Filter", 0) * node["Actual Loops"]
    )


def _assert_one_page_through_the_index(plan: dict[str, Any]) -> None:
    (scan,) = _scans_of(plan, "execution_metadata")
    assert scan["Node Type"] == "Index Scan", scan["Node Type"]
    assert scan["Index Name"] == "ix_execution_metadata_organization_hash_created_at"
    assert scan["Scan Direction"] == "Backward"
    # One page (plus the row that says another page follows), give or take ties.
    assert _rows_read(scan) <= PAGE + 1 + 5, _rows_read(scan)
    # The names are joined for the page's rows only, each through an index.
    # (execution_progress holds only the runs in flight: any plan over it is cheap.)
    for relation in ("jobs", "claim_submissions", "clients"):
        for node in _scans_of(plan, relation):
            assert node["Node Type"] != "Seq Scan", (relation, node["Node Type"])
            assert _rows_read(node) <= PAGE + 1, (relation, _rows_read(node))


async def test_first_page_reads_one_page_through_the_index(dashboard: Any) -> None:
    biggest = (await _orgs_by_size(dashboard))[0]
    with Captured(dashboard) as captured:
        async with dashboard.unit(biggest) as uow:
            page = await uow.metadata.list(limit=PAGE)
    assert len(page.items) == PAGE
    ((statement, parameters),) = captured.sent
    _assert_one_page_through_the_index(await _explain(dashboard, statement, parameters))


async def test_generic_plan_of_the_first_page_walks_the_index(dashboard: Any) -> None:
    # asyncpg prepares statements, and PostgreSQL settles on a generic plan after five
    # runs. Without the extended statistics on (organization_id, its hash), that plan
    # expected a handful of rows and sorted the whole organization instead.
    biggest = (await _orgs_by_size(dashboard))[0]
    with Captured(dashboard) as captured:
        async with dashboard.unit(biggest) as uow:
            await uow.metadata.list(limit=PAGE)
    ((statement, _parameters),) = captured.sent
    async with dashboard.engine.connect() as conn:
        await conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        await conn.exec_driver_sql(f"PREPARE first_page AS {statement}")
        raw = await conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE first_page('{biggest}')"
        )
        plan = raw.scalar_one()
    _assert_one_page_through_the_index(
        dict((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
    )


async def test_deep_page_reads_one_page_through_the_index(dashboard: Any) -> None:
    orgs = await _orgs_by_size(dashboard)
    for org in (orgs[0], orgs[len(orgs) // 2]):
        # A cursor half-way down the organization's history, reached page by page.
        async with dashboard.sessions() as session:
            middle = (
                await session.execute(
                    sa.text(
                        "SELECT created_at, job_id FROM execution_metadata "
                        "WHERE organization_id = :org ORDER BY created_at DESC, job_id DESC "
                        "OFFSET (SELECT count(*) / 2 FROM execution_metadata "
                        "WHERE organization_id = :org) LIMIT 1"
                    ),
                    {"org": org},
                )
            ).one()
        from execstore.metadata.listing import list_cursor

        cursor = list_cursor(middle[0], middle[1])
        with Captured(dashboard) as captured:
            async with dashboard.unit(org) as uow:
                page = await uow.metadata.list(cursor=cursor, limit=PAGE)
        assert page.items[0].created_at <= middle[0]
        ((statement, parameters),) = captured.sent
        _assert_one_page_through_the_index(await _explain(dashboard, statement, parameters))


async def test_get_reads_one_row_through_the_primary_key(dashboard: Any) -> None:
    org = (await _orgs_by_size(dashboard))[0]
    async with dashboard.sessions() as session:
        job = await session.scalar(
            sa.text("SELECT job_id FROM execution_metadata WHERE organization_id = :o LIMIT 1"),
            {"o": org},
        )
    with Captured(dashboard) as captured:
        async with dashboard.unit(org) as uow:
            view = await uow.metadata.get(job)
    assert view.job_id == job
    ((statement, parameters),) = captured.sent
    plan = await _explain(dashboard, statement, parameters)
    (scan,) = _scans_of(plan, "execution_metadata")
    assert scan["Node Type"] == "Index Scan"
    assert scan["Index Name"] == "pk_execution_metadata"
    assert _rows_read(scan) == 1


async def test_deep_pages_settle_on_one_generic_plan(dashboard: Any) -> None:
    # Planning the joins costs more than running them. With the cursor's values in
    # view, PostgreSQL priced its generic plan above the custom plans of the largest
    # organizations and planned every page again; through a subquery it settles.
    orgs = await _orgs_by_size(dashboard)
    async with dashboard.sessions() as session:
        rows = (
            await session.execute(
                sa.text(
                    "SELECT DISTINCT ON (organization_id) organization_id, created_at, job_id "
                    "FROM execution_metadata WHERE organization_id = ANY(:orgs) "
                    "ORDER BY organization_id, created_at"
                ),
                {"orgs": orgs[:4]},
            )
        ).all()
    oldest = {org: (at, job) for org, at, job in rows}
    from execstore.metadata.listing import list_cursor

    # The oldest page of each of the four largest organizations, again and again.
    async with dashboard.engine.connect() as conn:
        pages = 0
        for _ in range(4):
            for org in orgs[:4]:
                at, job = oldest[org]
                with Captured(dashboard) as captured:
                    async with dashboard.unit(org) as uow:
                        await uow.metadata.list(cursor=list_cursor(at, job), limit=PAGE)
                ((statement, parameters),) = captured.sent
                await conn.exec_driver_sql(statement, parameters)
                pages += 1
        generic, custom = (
            await conn.exec_driver_sql(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement = $1",
                (statement,),
            )
        ).one()
    assert generic + custom == pages
    assert generic == pages - 5, (generic, custom)
