"""``storage-report --simulate``: one synthetic month, the legacy way and execstore's way.

Both databases are fresh and receive the same jobs (:mod:`execstore.report.synthetic`):
the legacy one through the pre-optimization schema as the old service wrote it, the
optimized one through execstore's own API (jobs, metadata lifecycle, RAG context and
rule marks, log lines, results, PHI audit records). Then archival runs as it would at
steady state: log lines past their 30-day hot window and audit records past theirs go to
blobs, with pointer rows left behind.

How growth is counted (the plan's way: what the database accumulates per month):

- legacy: the legacy schema keeps everything, so every byte it holds is growth;
- optimized: rows kept for good (jobs, metadata, RAG, screenshots, result pointers)
  plus the pointer rows of archived logs and audit records, which stay for the whole
  retention. The hot tables (log lines, audit records) hold a constant size at steady
  state: their size is the *hot footprint*, reported apart (a month of logs for a 30-day
  window; ``audit_hot_days / 30`` months of audit records).

Every figure is measured (``pg_total_relation_size`` on PostgreSQL after VACUUM ANALYZE,
``dbstat`` on SQLite) and scaled by jobs: ``bytes per job * jobs_per_month``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.config import Settings, load_settings
from execstore.db import create_engine
from execstore.migrations.runner import migrate
from execstore.report.legacy_writer import write_legacy_jobs, write_legacy_organizations
from execstore.report.sizes import TableSize, measure_tables
from execstore.report.synthetic import Platform
from execstore.report.writer import write_jobs, write_organizations
from execstore.store import ExecStore

__all__ = ["SimulationResult", "simulate"]

SCREENSHOT_BASE = "https://claimautoprod.blob.core.windows.net/screenshots/"

# Tables whose size is a hot window, not growth (optimized schema); everything else grows.
HOT_TABLES = {"execution_log_partitioned": "logs", "phi_audit_log": "audit"}


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """The measured month, both ways."""

    jobs: int
    jobs_per_month: int
    legacy_empty: list[TableSize]
    """The legacy tables right after migration: pages every table has, rows or not."""
    legacy_tables: list[TableSize]
    optimized_empty: list[TableSize]
    optimized_before_archival: list[TableSize]
    optimized_tables: list[TableSize]
    blob_bytes: dict[str, int]
    legacy_result_bytes: float
    optimized_result_bytes: float
    audit_hot_days: int
    log_hot_days: int


@contextlib.asynccontextmanager
async def _fresh_database(base_url: str, label: str, keep: bool) -> AsyncIterator[str]:
    """A new empty database next to ``base_url`` (same server or directory), dropped after."""
    url = make_url(base_url)
    if url.drivername.startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix=f"execstore-sim-{label}-") as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'sim.db'}"
        return
    import asyncpg

    name = f"execstore_sim_{label}_{uuid.uuid4().hex[:8]}"
    admin = url.set(drivername="postgresql", database="postgres")
    dsn = admin.render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


async def _vacuum(settings: Settings, *tables: str) -> None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if settings.dialect == "postgresql":
                await conn.exec_driver_sql(f"VACUUM ANALYZE {', '.join(tables)}")
            else:
                await conn.exec_driver_sql("VACUUM")
    finally:
        await engine.dispose()


async def _measure(settings: Settings) -> list[TableSize]:
    await _vacuum(settings)
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return await measure_tables(conn, exact=True)
    finally:
        await engine.dispose()


async def _result_bytes(settings: Settings) -> float:
    """Average stored size of ``jobs.result`` (pg_column_size; JSON text length on SQLite)."""
    engine = create_engine(settings)
    size = (
        "pg_column_size(result)"
        if settings.dialect == "postgresql"
        else "length(CAST(result AS TEXT))"
    )
    try:
        async with engine.connect() as conn:
            found = await conn.exec_driver_sql(f"SELECT avg({size}) FROM jobs")
            return float(found.scalar_one() or 0)
    finally:
        await engine.dispose()


async def simulate(
    base_url: str,
    *,
    jobs: int,
    jobs_per_month: int = 50_000,
    seed: int = 7,
    keep: bool = False,
    on_step: Any = None,
    clock: Clock = SYSTEM_CLOCK,
) -> SimulationResult:
    """Generate ``jobs`` jobs of one month into a fresh legacy and a fresh optimized database
    on the server (or directory) of ``base_url``, archive as at steady state, and measure.

    The month ends well before the clock's now; the optimized store runs on ``clock``.
    """
    say = on_step or (lambda _text: None)
    # The month lies far enough back that its logs and audit records are past their windows.
    base = load_settings(database_url=base_url)
    start = (clock.now() - dt.timedelta(days=base.audit_hot_days + 45)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    platform = Platform(seed=seed, month_start=start)
    month = platform.jobs(jobs)

    async with _fresh_database(base_url, "legacy", keep) as legacy_url:
        say("legacy: writing the month the way the old service did")
        legacy_settings = load_settings(database_url=legacy_url)
        await migrate(legacy_url, "legacy_baseline", settings=legacy_settings)
        legacy_empty = await _measure(legacy_settings)
        engine = create_engine(legacy_settings)
        try:
            async with engine.begin() as conn:
                await write_legacy_organizations(conn, platform.organizations)
            await write_legacy_jobs(
                engine, month, settle=lambda: _vacuum(legacy_settings, "execution_metadata")
            )
        finally:
            await engine.dispose()
        legacy_tables = await _measure(legacy_settings)
        legacy_result = await _result_bytes(legacy_settings)

    async with (
        _fresh_database(base_url, "optimized", keep) as optimized_url,
        _blob_directory() as blobs,
    ):
        settings = load_settings(
            database_url=optimized_url,
            blob_url=f"file:{blobs}",
            screenshot_base_url=SCREENSHOT_BASE,
        )
        await migrate(optimized_url, settings=settings)
        optimized_empty = await _measure(settings)
        say("optimized: writing the month through execstore's API")
        async with ExecStore.open(settings, clock=clock) as store:
            await write_organizations(store, platform.organizations)
            await write_jobs(store, month, settle=lambda: _vacuum(settings, "execution_metadata"))
        before = await _measure(settings)
        say("optimized: archiving logs and audit records past their hot windows")
        blob_bytes = await _archive(settings, clock)
        after = await _measure(settings)
        optimized_result = await _result_bytes(settings)

    return SimulationResult(
        jobs=jobs,
        jobs_per_month=jobs_per_month,
        legacy_empty=legacy_empty,
        legacy_tables=legacy_tables,
        optimized_empty=optimized_empty,
        optimized_before_archival=before,
        optimized_tables=after,
        blob_bytes=blob_bytes,
        legacy_result_bytes=legacy_result,
        optimized_result_bytes=optimized_result,
        audit_hot_days=settings.audit_hot_days,
        log_hot_days=settings.log_hot_days,
    )


@contextlib.asynccontextmanager
async def _blob_directory() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="execstore-sim-blobs-") as folder:
        yield Path(folder)


async def _archive(settings: Settings, clock: Clock) -> dict[str, int]:
    """Archive as steady state would; the blob bytes per kind afterwards."""
    from execstore.audit import archive_audit
    from execstore.logs import archive_logs

    async with ExecStore.open(settings, clock=clock) as store:
        await archive_logs(
            store.engine,
            store.sessions,
            store.archives,
            hot_days=settings.log_hot_days,
            clock=store.clock,
        )
        # Audit records carry the time they were recorded (the clock's now): archiving
        # everything recorded so far is what the archival run does once they are past the
        # window.
        await archive_audit(store.sessions, store.archives, hot_days=0, clock=store.clock)
        totals = {}
        async with store.sessions() as session:
            for kind in store.archive_kinds:
                totals[kind.name] = (await kind.totals(session)).stored_bytes
    return totals
