"""Batch jobs set bad rows aside: write_each on both backends (real savepoints), and the
one report shape every batch job returns."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from execstore.errors import NotFound
from execstore.operations import BatchReport, SetAside, describe_failure, write_each
from execstore.schema import models as m


async def test_one_refused_row_is_set_aside_and_the_rest_is_written(store: Any, org: Any) -> None:
    dup = uuid.uuid4()
    rows = [
        {"id": uuid.uuid4(), "name": "one"},
        {"id": dup, "name": "two"},
        {"id": dup, "name": "three (same id: refused)"},
        {"id": uuid.uuid4(), "name": "four"},
    ]

    async def write(batch: Sequence[dict[str, Any]]) -> None:
        await uow.session.execute(
            sa.insert(m.Workflow), [{**row, "organization_id": org} for row in batch]
        )

    async with store.unit(org) as uow:
        done, aside = await write_each(uow.session, rows, write, lambda row: row["name"])
    assert [row["name"] for row in done] == ["one", "two", "four"]
    assert [a.key for a in aside] == ["three (same id: refused)"]
    assert aside[0].reason.startswith("IntegrityError")
    async with store.sessions() as session:
        names = set(
            (
                await session.scalars(
                    sa.select(m.Workflow.name).where(m.Workflow.organization_id == org)
                )
            ).all()
        )
    assert names == {"one", "two", "four"}


async def test_a_batch_that_fits_is_written_at_once(store: Any, org: Any) -> None:
    calls: list[int] = []

    async def write(batch: Sequence[int]) -> None:
        calls.append(len(batch))

    async with store.unit(org) as uow:
        done, aside = await write_each(uow.session, [1, 2, 3], write, str)
    assert (done, aside, calls) == ([1, 2, 3], [], [3])


def test_reasons_are_one_line() -> None:
    assert describe_failure(NotFound("jobs x not found\nmore")) == "NotFound: jobs x not found"
    assert describe_failure(ValueError()) == "ValueError"
    assert SetAside("a", "b") == SetAside("a", "b")


def test_a_report_needs_attention_exactly_when_something_was_set_aside() -> None:
    report = BatchReport.start("backfill things", "moved", "remaining", dry_run=True)
    assert report.counts == {"moved": 0, "remaining": 0}
    report.add(moved=2)
    report.add(moved=1, remaining=4)
    assert (report.counts, report.needs_attention) == ({"moved": 3, "remaining": 4}, False)
    report.details["keys"] = ["a", "b"]
    report.aside(uuid.UUID(int=1), "ValueError: bad")
    assert report.needs_attention
    assert report.as_dict() == {
        "job": "backfill things",
        "dry_run": True,
        "needs_attention": True,
        "counts": {"moved": 3, "remaining": 4},
        "set_aside": [{"key": str(uuid.UUID(int=1)), "reason": "ValueError: bad"}],
        "details": {"keys": ["a", "b"]},
    }
