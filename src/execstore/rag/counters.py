"""Shadow-read counters in ``rag_counters``: shared by every process, never failing a read.

Each bump is its own short transaction on a session of its own (an upsert adding to
the named counters), run after the reading unit of work ends so that it never waits
for, or holds, that unit's locks. A failure to count is logged and forgotten.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.errors import translate_database_errors
from execstore.rag.types import ShadowStats
from execstore.schema.models import RagCounter

__all__ = ["COMPARED", "FAILURES", "MISMATCHES", "bump", "read_stats"]

log = logging.getLogger("execstore.rag")

COMPARED = "shadow_compared"
MISMATCHES = "shadow_mismatches"
FAILURES = "shadow_failures"


async def bump(
    sessions: async_sessionmaker[AsyncSession], counts: Mapping[str, int], *, at: dt.datetime
) -> None:
    """Add ``counts`` to the named counters, stamped ``at`` (best effort: errors are logged)."""
    try:
        async with sessions() as session, session.begin():
            dialect = session.get_bind().dialect.name
            insert = (
                pg.insert(RagCounter)
                if dialect == "postgresql"
                else sqlite_dialect.insert(RagCounter)
            )
            stmt = insert.values(
                [{"name": k, "value": v, "updated_at": at} for k, v in counts.items() if v]
            )
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={
                        "value": RagCounter.value + stmt.excluded.value,
                        "updated_at": stmt.excluded.updated_at,
                    },
                )
            )
    except Exception:  # counting must never fail the read it counts
        log.warning("could not update the RAG shadow-read counters", exc_info=True)


async def read_stats(sessions: async_sessionmaker[AsyncSession]) -> ShadowStats:
    """The shadow-read counters as every process has bumped them so far."""
    async with sessions() as session:
        with translate_database_errors():
            rows: dict[str, int] = dict(
                (await session.execute(sa.select(RagCounter.name, RagCounter.value))).all()
            )
    return ShadowStats(
        compared=rows.get(COMPARED, 0),
        mismatches=rows.get(MISMATCHES, 0),
        failures=rows.get(FAILURES, 0),
    )
