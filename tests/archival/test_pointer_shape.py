"""One archive pointer (issue 18.4): same columns, one lost mark, one codec, one row -> ref.

README, "Archives": every pointer table (``job_result_archives``,
``execution_log_archives``, ``phi_audit_archives``) holds the same columns about its
blob, with the same types, in the database a migration built (both backends); a row
read any way execstore reads one (a model object, a row mapping, an asyncpg record)
gives back exactly the ArchiveRef that was written; sizes are ``integer``, so an archive
holds at most ``MAX_ARCHIVE_SIZE`` bytes: PostgreSQL takes exactly that many and refuses
one more (the encoder refuses a larger payload before it is stored: ``tests/blob``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.archival import archive_ref, pointer_values
from execstore.blob import MAX_ARCHIVE_SIZE, ArchiveRef
from execstore.config import Codec
from execstore.results.format import archive_values, ref_from_row, result_archive_key
from execstore.schema import models as m
from execstore.schema.audit import PhiAuditArchive
from support.timeline import new_job, new_org

SHARED = ("archived_at", "raw_size", "stored_size", "codec", "format_version", "lost", "sha256")
TABLES = ("job_result_archives", "execution_log_archives", "phi_audit_archives")
NOW = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


async def _catalog(store: Any) -> dict[str, dict[str, tuple[str, bool, str | None]]]:
    """Each pointer table's columns as the database describes them."""

    def read(conn: Any) -> dict[str, dict[str, tuple[str, bool, str | None]]]:
        inspector = sa.inspect(conn)
        return {
            table: {
                c["name"]: (str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            }
            for table in TABLES
        }

    async with store.engine.connect() as conn:
        return await conn.run_sync(read)


async def test_every_pointer_table_holds_the_same_columns_with_the_same_types(store: Any) -> None:
    catalog = await _catalog(store)
    shared = {table: {name: columns[name] for name in SHARED} for table, columns in catalog.items()}
    assert shared["execution_log_archives"] == shared["job_result_archives"]
    assert shared["phi_audit_archives"] == shared["job_result_archives"]
    assert "INT" in shared["job_result_archives"]["raw_size"][0].upper()
    assert "BIG" not in shared["job_result_archives"]["raw_size"][0].upper()
    for keyed in ("execution_log_archives", "phi_audit_archives"):
        assert catalog[keyed]["blob_key"] == catalog["phi_audit_archives"]["blob_key"]
        assert catalog[keyed]["record_count"] == catalog["phi_audit_archives"]["record_count"]
    assert "blob_key" not in catalog["job_result_archives"]  # derived from the job
    assert "blob_missing" not in catalog["phi_audit_archives"]


def _ref(key: str, codec: Codec, records: int) -> ArchiveRef:
    return ArchiveRef(
        key=key,
        codec=codec,
        sha256=bytes(range(32)),
        raw_size=MAX_ARCHIVE_SIZE,
        stored_size=123_456,
        record_count=records,
        format_version=1,
    )


async def _rows_read_every_way(
    store: Any, backend: str, table: str, column: str, value: Any
) -> list[Any]:
    """The row as a model object, a row mapping and (PostgreSQL) an asyncpg record."""
    model = {
        "job_result_archives": m.JobResultArchive,
        "execution_log_archives": m.ExecutionLogArchive,
        "phi_audit_archives": PhiAuditArchive,
    }[table]
    where = getattr(model, column) == value
    async with store.sessions() as session:
        found = [await session.scalar(sa.select(model).where(where))]
        found.append(
            (await session.execute(sa.select(model.__table__).where(where))).one()._mapping
        )
    if backend == "postgres":
        async with store.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            found.append(await raw.fetchrow(f"SELECT * FROM {table} WHERE {column} = $1", value))
    return found


async def test_a_row_read_any_way_gives_back_the_ref_that_was_written(
    store: Any, backend: str
) -> None:
    org, workflow = await new_org(store)
    job = await new_job(store, org, workflow)
    async with store.sessions() as session:
        created_at = (await session.get(m.Job, job)).created_at  # type: ignore[union-attr]
    result = _ref(result_archive_key(org, job, created_at, Codec.ZSTD), Codec.ZSTD, 1)
    chunk = _ref(f"logs/{org}/2031/05/{job}/c-1.ndjson.gz", Codec.GZIP, 2000)
    segment = _ref(f"audit/{org}/2031/05/segments/1-9.ndjson.zst", Codec.ZSTD, 9)
    async with store.sessions() as session, session.begin():
        await session.execute(
            sa.insert(m.JobResultArchive).values(**archive_values(job, result, archived_at=NOW))
        )
        await session.execute(
            sa.insert(m.ExecutionLogArchive).values(
                organization_id=org,
                start_date=NOW,
                end_date=NOW,
                first_job=job,
                last_job=job,
                job_keys=b"",
                **pointer_values(chunk, archived_at=NOW),
            )
        )
        await session.execute(
            sa.insert(PhiAuditArchive).values(
                id=uuid.uuid4(),
                organization_id=org,
                first_seq=1,
                last_seq=9,
                start_date=NOW,
                end_date=NOW,
                end_hash=bytes(32),
                **pointer_values(segment, archived_at=NOW),
            )
        )
    results = await _rows_read_every_way(store, backend, "job_result_archives", "job_id", job)
    for row in results:
        assert archive_ref(row, key=result.key) == result
        assert not row["lost"] if hasattr(row, "keys") else not row.lost
    assert ref_from_row(results[0], organization_id=org, created_at=created_at) == result
    for table, ref in (("execution_log_archives", chunk), ("phi_audit_archives", segment)):
        rows = await _rows_read_every_way(store, backend, table, "blob_key", ref.key)
        assert [archive_ref(row) for row in rows] == [ref] * len(rows), table


# SQLite integers are 64-bit: there the encoder's limit is what holds (tested with it).
@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_an_integer_size_takes_the_largest_archive_and_postgres_refuses_a_byte_more(
    store: Any, backend: str
) -> None:
    org, workflow = await new_org(store)
    job = await new_job(store, org, workflow)
    largest = _ref(f"results/{org}/x", Codec.GZIP, 1)
    too_large = dataclasses.replace(largest, raw_size=MAX_ARCHIVE_SIZE + 1)
    async with store.sessions() as session:
        with pytest.raises(sa.exc.DBAPIError):  # the driver refuses it for the column
            async with session.begin():
                await session.execute(
                    sa.insert(m.JobResultArchive).values(
                        **archive_values(job, too_large, archived_at=NOW)
                    )
                )
    async with store.sessions() as session, session.begin():
        await session.execute(
            sa.insert(m.JobResultArchive).values(**archive_values(job, largest, archived_at=NOW))
        )
        stored = await session.scalar(
            sa.select(m.JobResultArchive.raw_size).where(m.JobResultArchive.job_id == job)
        )
    assert stored == MAX_ARCHIVE_SIZE == 2**31 - 1
