"""Training each organization's details dictionary from its own records.

An organization's first records are compressed without a dictionary; once it has at
least ``min_records`` hot records, ``train_dictionaries`` (run by ``execstore audit
checkpoint``, by the backfill, and after the write that claims an organization's
periodic checkpoint) trains one on its most recent records and new records
use it. A dictionary older than ``retrain_after`` with at least ``min_records`` records
written since is replaced by a new version (data drifts); old versions stay, so every
record stays readable.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.audit.catalog import state_for
from execstore.audit.codec import Dictionary, build_dictionary
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import translate_database_errors
from execstore.operations.batch import BatchReport
from execstore.schema.audit import PhiAuditChainHead, PhiAuditDictionary, PhiAuditLog

__all__ = ["store_dictionary", "train_dictionaries"]

SAMPLES: Final = 2000
MIN_RECORDS: Final = 200
RETRAIN_AFTER: Final = dt.timedelta(days=30)


async def store_dictionary(
    sessions: async_sessionmaker[AsyncSession],
    org: uuid.UUID,
    samples: Sequence[bytes],
    *,
    clock: Clock,
) -> Dictionary | None:
    """Train on ``samples`` and store the result as ``org``'s next version (None if too few).

    The version is created at the clock's time (what ``retrain_after`` counts from).
    """
    async with sessions() as session:
        with translate_database_errors():
            async with session.begin():
                top = await session.scalar(
                    sa.select(sa.func.max(PhiAuditDictionary.version)).where(
                        PhiAuditDictionary.organization_id == org
                    )
                )
                dictionary = build_dictionary(samples, int(top or 0) + 1)
                if dictionary is None:
                    return None
                dialect = session.get_bind().dialect.name
                table: sa.Table = PhiAuditDictionary.__table__  # type: ignore[assignment]
                insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
                await session.execute(
                    insert.values(
                        organization_id=org,
                        version=dictionary.version,
                        codec=dictionary.codec,
                        sample_count=dictionary.sample_count,
                        sha256=dictionary.sha256,
                        content=dictionary.content,
                        created_at=clock.now(),
                    ).on_conflict_do_nothing()
                )
    state_for(sessions).forget_codec(org)
    return dictionary


async def train_dictionaries(
    sessions: async_sessionmaker[AsyncSession],
    *,
    organization_id: uuid.UUID | None = None,
    min_records: int = MIN_RECORDS,
    retrain_after: dt.timedelta = RETRAIN_AFTER,
    clock: Clock = SYSTEM_CLOCK,
) -> BatchReport:
    """Train a dictionary for every organization that needs one (see the module docstring).

    Counts ``trained`` and ``skipped`` organizations; ``details["dictionaries"]`` lists
    each new one (organization, version, samples, bytes). A dictionary's age
    (``retrain_after``) is measured by ``clock``.
    """
    report = BatchReport.start("audit dictionaries", "trained", "skipped")
    trained: list[dict[str, object]] = report.details.setdefault("dictionaries", [])
    state = state_for(sessions)
    async with sessions() as session:
        stmt = sa.select(PhiAuditChainHead.organization_id)
        if organization_id is not None:
            stmt = stmt.where(PhiAuditChainHead.organization_id == organization_id)
        with translate_database_errors():
            organizations = list((await session.scalars(stmt)).all())
    for org in organizations:
        async with sessions() as session:
            with translate_database_errors():
                samples = await _samples_if_due(
                    session, org, min_records, retrain_after, state, clock.now()
                )
        if samples is None:
            report.add(skipped=1)
            continue
        dictionary = await store_dictionary(sessions, org, samples, clock=clock)
        if dictionary is None:
            report.add(skipped=1)
        else:
            report.add(trained=1)
            trained.append(
                {
                    "organization_id": org,
                    "version": dictionary.version,
                    "samples": dictionary.sample_count,
                    "bytes": len(dictionary.content),
                }
            )
    return report


async def _samples_if_due(
    session: AsyncSession,
    org: uuid.UUID,
    min_records: int,
    retrain_after: dt.timedelta,
    state: object,
    now: dt.datetime,
) -> list[bytes] | None:
    newest = (
        await session.execute(
            sa.select(PhiAuditDictionary.created_at)
            .where(PhiAuditDictionary.organization_id == org)
            .order_by(PhiAuditDictionary.version.desc())
            .limit(1)
        )
    ).first()
    log: sa.Table = PhiAuditLog.__table__  # type: ignore[assignment]
    since = None
    if newest is not None:
        created = newest[0] if newest[0].tzinfo else newest[0].replace(tzinfo=dt.UTC)
        if now - created < retrain_after:
            return None
        since = created
    recent = sa.select(log.c.seq).where(log.c.organization_id == org)
    if since is not None:
        recent = recent.where(log.c.created_at > since)
    count = await session.scalar(
        sa.select(sa.func.count()).select_from(recent.limit(min_records).subquery())
    )
    if int(count or 0) < min_records:
        return None
    rows = (
        await session.execute(
            sa.select(log.c.dictionary, log.c.details)
            .where(log.c.organization_id == org, log.c.details.is_not(None))
            .order_by(log.c.seq.desc())
            .limit(SAMPLES)
        )
    ).all()
    codec = await state_for_codec(session, org, state, {r[0] for r in rows})
    return [d for d in (codec.decode(r[1], r[0]) for r in rows) if d is not None]


async def state_for_codec(session: AsyncSession, org: uuid.UUID, state: object, need: set[int]):  # type: ignore[no-untyped-def]
    from execstore.audit.catalog import AuditState

    assert isinstance(state, AuditState)
    return await state.codec(session, org, need=need)
