"""Result archival with ``--org`` leaves the other organization's legacy results as they are."""

from __future__ import annotations

import uuid
from typing import Any

from execstore.results import backfill_results

from .test_archival import URLS, legacy_left, make_legacy_jobs


async def test_archiving_one_organizations_results_leaves_the_others(store: Any) -> None:
    orgs = []
    for name in ("A", "B"):
        org = uuid.uuid4()
        async with store.unit(org) as uow:
            await uow.reference.add_organization(name)
        orgs.append((org, await make_legacy_jobs(store, org, 2)))
    (a, a_outputs), (b, b_outputs) = orgs
    report = await backfill_results(
        store.sessions, store.archives, organization_id=a, screenshot_urls=URLS
    )
    assert (report.counts["moved"], report.set_aside) == (2, [])
    assert (await legacy_left(store, a), await legacy_left(store, b)) == (0, 2)
    async with store.unit(a) as uow:
        for job, output in a_outputs.items():
            detail = await uow.results.detail(job)
            assert detail is not None
            assert detail.output == output
    async with store.unit(b) as uow:
        for job in b_outputs:
            summary = await uow.results.find(job)
            assert summary is not None
            assert summary.legacy
    again = await backfill_results(
        store.sessions, store.archives, organization_id=b, screenshot_urls=URLS
    )
    assert again.counts["moved"] == 2
    assert await legacy_left(store, b) == 0
