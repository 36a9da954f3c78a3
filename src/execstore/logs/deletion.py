"""Deleting a job's logs: hot lines, legacy lines, and its lines inside archive chunks.

A chunk holds many jobs, so removing one job's lines rewrites the chunk: its other
lines are encoded again under the next revision's key (``.r<n>``), uploaded and read
back before the pointer row is updated in the caller's transaction; the old blob is
deleted only after the commit (``on_commit``), and the new one again if the transaction
rolls back (``on_rollback``, only when this call created it). A chunk left empty loses
its pointer row, and its blob after the commit. Chunks whose pointer row is locked by
another deletion are waited for (``FOR UPDATE``), so two deletions in one chunk never
overwrite each other's rewrite. A chunk the reconciler marked lost is left alone (its
lines cannot be read, so they cannot be kept or removed).

The job's row is locked first (``FOR UPDATE``): an append that checked the job before
(holding ``FOR KEY SHARE``) commits first and its lines are deleted here too.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.archival.pointers import archive_ref
from execstore.blob import Archives
from execstore.errors import translate_database_errors
from execstore.logs.chunks import Chunk, chunk_values, upload_chunk
from execstore.logs.format import may_hold_job
from execstore.logs.repository import detached_tables
from execstore.repository import TransactionHooks
from execstore.schema import models as m
from execstore.schema.partitions import month_start

__all__ = ["forget_job_logs", "legacy_log_table_exists", "legacy_spellings"]

_entry_table: sa.Table = m.ExecutionLogEntry.__table__  # type: ignore[assignment]
_archive = m.ExecutionLogArchive


def legacy_spellings(job_id: uuid.UUID) -> list[str]:
    """The legacy text ids that map to ``job_id`` by spelling it (cuids map by hash)."""
    text, hexed = str(job_id), job_id.hex
    return [
        text,
        text.upper(),
        "{" + text + "}",
        "{" + text.upper() + "}",
        hexed,
        hexed.upper(),
    ]


async def legacy_log_table_exists(session: AsyncSession) -> bool:
    """Whether the legacy ``execution_log`` is still there (before ``contract_execution_log``)."""
    if session.get_bind().dialect.name == "postgresql":
        found = await session.scalar(sa.text("SELECT to_regclass('execution_log') IS NOT NULL"))
    else:
        found = await session.scalar(
            sa.text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'execution_log'")
        )
    return bool(found)


def forget_job_logs(archives: Archives, organization_id: uuid.UUID) -> Any:
    """The job-deletion step of logs (a ``JobDeletion``) for one organization's jobs."""

    async def forget(
        session: AsyncSession, job_id: uuid.UUID, hooks: TransactionHooks | None
    ) -> list[str]:
        postgres = session.get_bind().dialect.name == "postgresql"
        with translate_database_errors():
            if postgres:
                await session.execute(
                    sa.select(m.Job.id).where(m.Job.id == job_id).with_for_update()
                )
            for table in [_entry_table, *await detached_tables(session)]:
                await session.execute(sa.delete(table).where(table.c.job_id == job_id))
            if await legacy_log_table_exists(session):
                await session.execute(
                    sa.text("DELETE FROM execution_log WHERE job_id IN :ids").bindparams(
                        sa.bindparam("ids", expanding=True)
                    ),
                    {"ids": legacy_spellings(job_id)},
                )
            stmt = sa.select(_archive).where(
                _archive.organization_id == organization_id,
                _archive.first_job <= job_id,
                _archive.last_job >= job_id,
            )
            if postgres:
                stmt = stmt.with_for_update()
            chunks = (await session.scalars(stmt.order_by(_archive.id))).all()
        gone: list[str] = []
        for chunk in chunks:
            if chunk.lost or not may_hold_job(bytes(chunk.job_keys), job_id):
                continue
            old = await rewrite_without(session, archives, chunk, job_id, hooks)
            if old is not None:
                gone.append(old)
        return gone

    return forget


async def rewrite_without(
    session: AsyncSession,
    archives: Archives,
    chunk: m.ExecutionLogArchive,
    job_id: uuid.UUID,
    hooks: TransactionHooks | None,
) -> str | None:
    """Remove ``job_id``'s lines from ``chunk``; the old key to delete after commit, if any."""
    payload = await archives.read_bytes(archive_ref(chunk))
    target = str(job_id)
    kept = [
        record
        for line in payload.split(b"\n")
        if line and (record := json.loads(line))["job_id"] != target
    ]
    if len(kept) == chunk.record_count:
        return None  # a fingerprint collision: nothing of this job in here
    old_key = chunk.blob_key
    with translate_database_errors():
        if not kept:
            await session.execute(sa.delete(_archive).where(_archive.id == chunk.id))
        else:
            rebuilt = Chunk(chunk.organization_id, month_start(chunk.start_date))
            for record in kept:
                stamp = dt.datetime.fromisoformat(record["timestamp"])
                rebuilt.add(uuid.UUID(record["job_id"]), record["id"], stamp, record)
            revision = chunk.revision + 1
            key = rebuilt.key(archives, revision=revision)
            existed = await archives.store.exists(key)
            ref = await upload_chunk(archives, rebuilt, revision=revision)
            if hooks is not None and not existed:
                hooks.on_rollback(functools.partial(archives.delete, key))
            values = chunk_values(
                rebuilt,
                ref,
                source_id=chunk.source_id,
                archived_at=archives.clock.now(),  # the store's clock: the blob is new
                revision=revision,
            )
            await session.execute(
                sa.update(_archive).where(_archive.id == chunk.id).values(**values)
            )
    if hooks is not None:
        hooks.on_commit(functools.partial(archives.delete, old_key))
    return old_key
