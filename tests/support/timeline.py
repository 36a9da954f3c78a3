"""Test helpers every area shares: UTC instants, organizations and jobs (made at the store's
clock), row counts."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

__all__ = ["TICK", "count_of", "new_job", "new_jobs", "new_org", "utc"]

TICK = dt.timedelta(microseconds=1)
"""The smallest step every backend stores: one below and one above a boundary."""


def utc(*parts: int) -> dt.datetime:
    """``dt.datetime(*parts)`` in UTC."""
    return dt.datetime(*parts, tzinfo=dt.UTC)  # type: ignore[misc]


async def new_org(store: Any, name: str = "org") -> tuple[uuid.UUID, uuid.UUID]:
    """A new organization with one workflow, made at the store's clock; their ids."""
    org = uuid.uuid4()
    async with store.unit(org) as uow:
        await uow.reference.add_organization(f"{name} {org.hex[:6]}")
        workflow = await uow.reference.add_workflow("Claim status check")
    return org, workflow.id


async def new_job(store: Any, org: uuid.UUID, workflow: uuid.UUID) -> uuid.UUID:
    """A committed job of ``org``."""
    return (await new_jobs(store, org, workflow=workflow))[0]


async def new_jobs(
    store: Any, org: uuid.UUID, count: int = 1, *, workflow: uuid.UUID | str = "Claim status check"
) -> list[uuid.UUID]:
    """``count`` committed jobs of ``org``, of ``workflow``: its id, or the name of a
    workflow to create for them."""
    async with store.unit(org) as uow:
        if isinstance(workflow, str):
            workflow = (await uow.reference.add_workflow(workflow)).id
        return [(await uow.jobs.create(workflow_id=workflow)).id for _ in range(count)]


async def count_of(store: Any, model: Any, **where: Any) -> int:
    """How many rows of ``model`` match the ``where`` equalities."""
    async with store.sessions() as session:
        stmt = sa.select(sa.func.count()).select_from(model).filter_by(**where)
        return int(await session.scalar(stmt) or 0)
