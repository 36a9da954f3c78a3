"""Named facts the metadata capability records about itself (``execution_metadata_state``).

``summary_refresh``: when the rollup was last refreshed. (What the backfill check found
is a backfill completion record: :mod:`execstore.operations.backfills`.)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.repository import as_utc
from execstore.schema import models as m

__all__ = ["read_state", "record_state"]

_state: sa.Table = m.ExecutionMetadataState.__table__  # type: ignore[assignment]


async def record_state(
    session: AsyncSession, name: str, details: dict[str, Any], *, at: dt.datetime
) -> None:
    """Set ``name`` to ``details``, recorded ``at`` (the clock's time)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(_state).values(name=name, recorded_at=at, details=details)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"recorded_at": stmt.excluded.recorded_at, "details": stmt.excluded.details},
        )
    )


async def read_state(session: AsyncSession, name: str) -> tuple[dt.datetime, dict[str, Any]] | None:
    """When ``name`` was recorded and its details, or None."""
    found = (
        await session.execute(
            sa.select(_state.c.recorded_at, _state.c.details).where(_state.c.name == name)
        )
    ).first()
    return None if found is None else (as_utc(found[0]), dict(found[1]))
