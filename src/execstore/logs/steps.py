"""The log step catalog: (workflow, step index, step name) -> a small integer id.

Steps resolve through a per-process cache of the catalog on PostgreSQL; new catalog
entries are committed in a short transaction of their own (an id a row holds must never
vanish with a rolled-back unit). On SQLite they are added in the caller's transaction.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from cachetools import LRUCache
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.errors import translate_database_errors
from execstore.schema import models as m

__all__ = ["StepKey", "fill_steps", "known_steps", "resolve_steps"]

StepKey = tuple[uuid.UUID, int, str | None]
"""A catalog key: (workflow id, step index, step name)."""

_CATALOGS: weakref.WeakKeyDictionary[
    Any, LRUCache[uuid.UUID, dict[tuple[int, str | None], int]]
] = weakref.WeakKeyDictionary()
"""Per engine, per workflow, the catalog ids of its steps: (step index, step name) -> id."""


def _catalog(session: AsyncSession) -> LRUCache[uuid.UUID, dict[tuple[int, str | None], int]]:
    engine = session.get_bind()
    found = _CATALOGS.get(engine)
    if found is None:
        found = _CATALOGS[engine] = LRUCache(maxsize=10_000)
    return found


async def resolve_steps(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession] | None,
    keys: Iterable[StepKey],
) -> dict[StepKey, int]:
    """The catalog id of every key, adding the missing ones.

    PostgreSQL: new entries are committed in a transaction of their own (``sessions``)
    and cached for the process. SQLite: added in the caller's transaction, uncached.
    """
    wanted = set(keys)
    if session.get_bind().dialect.name != "postgresql" or sessions is None:
        return await _resolve_in(session, wanted, dialect=session.get_bind().dialect.name)
    cache = _catalog(session)
    found: dict[StepKey, int] = {}
    for key in wanted:
        known = cache.get(key[0])
        if known is not None and (step := known.get(key[1:])) is not None:
            found[key] = step
    missing = wanted - found.keys()
    if missing:
        async with sessions() as own, own.begin():
            resolved = await _resolve_in(own, missing, dialect="postgresql")
        found.update(resolved)
        for (workflow, index, name), step in resolved.items():
            known = cache.get(workflow)
            if known is None:
                known = cache[workflow] = {}
            known[(index, name)] = step
    return found


def known_steps(session: AsyncSession, workflow: uuid.UUID) -> Mapping[tuple[int, str | None], int]:
    """The catalog ids this process knows for ``workflow``'s steps (PostgreSQL; else {})."""
    if session.get_bind().dialect.name != "postgresql":
        return {}
    return _catalog(session).get(workflow) or {}


async def _resolve_in(
    session: AsyncSession, wanted: set[StepKey], *, dialect: str
) -> dict[StepKey, int]:
    step = m.ExecutionLogStep
    workflows = sorted({key[0] for key in wanted})
    found: dict[StepKey, int] = {}

    async def load() -> None:
        rows = await session.execute(
            sa.select(step.id, step.workflow_id, step.step_index, step.name).where(
                step.workflow_id.in_(workflows)
            )
        )
        for id_, workflow, index, name in rows:
            if (key := (workflow, index, name)) in wanted:
                found[key] = id_

    with translate_database_errors():
        await load()
        missing = sorted(wanted - found.keys(), key=lambda k: (str(k[0]), k[1], k[2] or ""))
        if missing:
            insert = postgresql.insert(step) if dialect == "postgresql" else sqlite.insert(step)
            values = [{"workflow_id": w, "step_index": i, "name": n} for w, i, n in missing]
            if dialect == "postgresql":
                await session.execute(insert.on_conflict_do_nothing(), values)
            else:
                # SQLite has one writer and its unique index does not dedupe NULL names:
                # only what the load did not find is inserted, so nothing doubles.
                await session.execute(sa.insert(step), values)
            await load()
    return found


# -- writing -----------------------------------------------------------------------------


async def fill_steps(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession] | None,
    workflow: uuid.UUID,
    rows: list[tuple[Any, ...]],
    missing: Mapping[tuple[int, str | None], list[int]],
) -> None:
    """Give the rows :func:`prepare_rows` left without a step id (``missing``: step key ->
    row indexes) their ids, adding steps this process has not seen to the catalog (in a
    committed transaction of their own on PostgreSQL)."""
    if not missing:
        return
    ids = await resolve_steps(session, sessions, {(workflow, *key) for key in missing})
    for key, indexes in missing.items():
        step = ids[(workflow, *key)]
        for i in indexes:
            row = rows[i]
            rows[i] = (row[0], row[1], step, *row[3:])
