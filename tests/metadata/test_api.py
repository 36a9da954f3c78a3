"""The metadata API on both backends: lifecycle writes, the joined view, tenant scoping."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.errors import Conflict, InvalidArgument, InvalidTransition, NotFound
from execstore.schema import models as m
from execstore.schema.enums import ExecutionStatus

from .conftest import T0, World, make_world, new_job


async def test_lifecycle_to_completion_reads_back_every_field(store: Any, world: World) -> None:
    job = await new_job(store, world)
    started = T0 + dt.timedelta(seconds=5)
    done = started + dt.timedelta(seconds=90, milliseconds=250)
    async with store.unit(world.org) as uow:
        created = await uow.metadata.get(job)
        await uow.metadata.start(job, started_at=started)
        for step in range(1, 13):
            await uow.metadata.progress(job, completed_steps=step - 1, total_steps=12)
        running = await uow.metadata.get(job)
        await uow.metadata.complete(job, completed_at=done)
    async with store.unit(world.org) as uow:
        view = await uow.metadata.get(job)

    assert created.status is ExecutionStatus.PENDING
    assert created.created_at == T0
    assert (running.status, running.completed_steps, running.total_steps) == (
        ExecutionStatus.RUNNING,
        11,
        12,
    )
    assert running.progress_percent == Decimal("91.67")
    assert view.status is ExecutionStatus.COMPLETED
    assert view.started_at == started
    assert view.completed_at == done
    assert view.duration_ms == 90_250
    assert (view.completed_steps, view.progress_percent) == (12, Decimal("100.00"))
    # Names are joined from their own tables.
    assert view.workflow_name == "Eligibility check"
    assert (view.client_id, view.client_name, view.client_npi) == (
        world.client,
        "Northside Family Medicine",
        "1234567893",
    )
    assert (view.claim_submission_id, view.insuree_name, view.insuree_id) == (
        world.claim,
        "Ada Lovelace",
        "MBR-0042",
    )
    # Accounts come from the job's credentials, in the job's order; primary = first.
    assert view.all_account_ids == world.accounts[1:]
    assert view.all_account_names == ["portal-beta", "portal-gamma"]
    assert view.account_count == 2
    assert (view.primary_account_id, view.primary_account_name) == (
        world.accounts[1],
        "portal-beta",
    )
    assert view.error_code is None


async def test_fail_fits_error_text_and_records_duration(store: Any, world: World) -> None:
    job = await new_job(store, world)
    async with store.unit(world.org) as uow:
        await uow.metadata.start(job, started_at=T0)
        await uow.metadata.fail(
            job,
            "E_PORTAL_TIMEOUT_" + "X" * 60,
            "portal did not answer: " + "é" * 600,
            status=ExecutionStatus.TIMED_OUT,
            completed_at=T0 + dt.timedelta(minutes=30),
        )
        view = await uow.metadata.get(job)
    assert view.status is ExecutionStatus.TIMED_OUT
    assert view.duration_ms == 30 * 60 * 1000
    assert view.error_code is not None
    assert len(view.error_code) == 50
    assert view.error_code.endswith("…[truncated]")
    assert view.error_message is not None
    assert len(view.error_message) == 500
    assert view.error_message.startswith("portal did not answer: éé")
    assert view.completed_steps == 0  # a failure keeps the progress it reached


async def test_explicit_primary_account_and_a_job_without_client_or_accounts(
    store: Any, world: World
) -> None:
    bare = await new_job(store, world, accounts=[], with_claim=False, track=False)
    chosen = await new_job(store, world, track=False)
    async with store.unit(world.org) as uow:
        await uow.metadata.create(bare)
        await uow.metadata.create(chosen, primary_account_id=world.accounts[0], total_steps=3)
        bare_view = await uow.metadata.get(bare)
        chosen_view = await uow.metadata.get(chosen)
    assert bare_view.client_id is None
    assert bare_view.client_name is None
    assert bare_view.insuree_name is None
    assert bare_view.all_account_ids == []
    assert bare_view.all_account_names == []
    assert bare_view.primary_account_id is None
    assert bare_view.account_count == 0
    assert bare_view.progress_percent == Decimal("0.00")
    assert chosen_view.primary_account_name == "portal-alpha"
    assert chosen_view.all_account_names == ["portal-beta", "portal-gamma"]


async def test_a_renamed_workflow_shows_its_new_name(store: Any, world: World) -> None:
    job = await new_job(store, world)
    async with store.unit(world.org) as uow:
        await uow.session.execute(
            sa.update(m.Workflow).where(m.Workflow.id == world.workflow).values(name="Renamed")
        )
        assert (await uow.metadata.get(job)).workflow_name == "Renamed"


async def test_transitions_the_status_forbids_change_nothing(store: Any, world: World) -> None:
    job = await new_job(store, world)
    async with store.unit(world.org) as uow:
        await uow.metadata.start(job, started_at=T0)
        await uow.metadata.complete(job, completed_at=T0 + dt.timedelta(seconds=1))
    for attempt in (
        lambda md: md.start(job),
        lambda md: md.progress(job, completed_steps=1, total_steps=2),
        lambda md: md.complete(job),
        lambda md: md.fail(job, "E", "late"),
    ):
        with pytest.raises(InvalidTransition, match="it is completed"):
            async with store.unit(world.org) as uow:
                await attempt(uow.metadata)
    async with store.unit(world.org) as uow:
        view = await uow.metadata.get(job)
    assert view.status is ExecutionStatus.COMPLETED
    assert view.error_code is None


async def test_bad_arguments_are_typed_errors(store: Any, world: World) -> None:
    job = await new_job(store, world)
    async with store.unit(world.org) as uow:
        with pytest.raises(InvalidArgument, match="cannot exceed"):
            await uow.metadata.progress(job, completed_steps=5, total_steps=4)
        with pytest.raises(InvalidArgument, match="total_steps"):
            await uow.metadata.progress(job, completed_steps=0, total_steps=40_000)
        with pytest.raises(InvalidArgument, match="timezone-aware"):
            await uow.metadata.start(job, started_at=dt.datetime(2026, 1, 1))
        with pytest.raises(InvalidArgument, match="not a failure status"):
            await uow.metadata.fail(job, "E", "m", status=ExecutionStatus.COMPLETED)
        with pytest.raises(InvalidArgument, match="pending or queued"):
            await uow.metadata.create(job, status=ExecutionStatus.RUNNING)


async def test_create_twice_is_a_conflict(store: Any, world: World) -> None:
    job = await new_job(store, world)
    with pytest.raises(Conflict, match="already exists"):
        async with store.unit(world.org) as uow:
            await uow.metadata.create(job)


async def test_another_organizations_rows_are_not_found(store: Any, world: World) -> None:
    other = await make_world(store)
    theirs = await new_job(store, other)
    theirs_untracked = await new_job(store, other, track=False)
    mine_untracked = await new_job(store, world, track=False)
    async with store.unit(world.org) as uow:
        with pytest.raises(NotFound):
            await uow.metadata.get(theirs)
        for write in (
            uow.metadata.create(theirs_untracked),
            uow.metadata.create(theirs),
            uow.metadata.start(theirs),
            uow.metadata.progress(theirs, completed_steps=1, total_steps=2),
            uow.metadata.complete(theirs),
            uow.metadata.fail(theirs, "E", "m"),
        ):
            with pytest.raises(NotFound):
                await write
        # My job, their credential as the primary account: NotFound, nothing written.
        with pytest.raises(NotFound, match="primary_account_id"):
            await uow.metadata.create(mine_untracked, primary_account_id=other.accounts[0])
        assert (await uow.metadata.list()).items == []  # nothing of theirs became mine
    async with store.unit(other.org) as uow:
        view = await uow.metadata.get(theirs)
    assert view.status is ExecutionStatus.PENDING  # untouched by the other unit
    async with store.sessions() as session:
        assert await session.get(m.ExecutionMetadata, mine_untracked) is None
        assert await session.get(m.ExecutionMetadata, theirs_untracked) is None


async def test_a_job_of_another_organization_naming_my_rows_cannot_leak_names(
    store: Any, world: World
) -> None:
    # The view joins every name within the row's own organization.
    job = await new_job(store, world)
    other = await make_world(store)
    async with store.unit(other.org) as uow:
        with pytest.raises(NotFound):
            await uow.metadata.get(job)
        page = await uow.metadata.list()
    assert job not in {item.job_id for item in page.items}


async def test_get_and_a_full_page_are_one_statement_each(store: Any, world: World) -> None:
    jobs = [await new_job(store, world, created_at=T0 + dt.timedelta(seconds=i)) for i in range(5)]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with store.unit(world.org) as uow:
            statements.clear()
            await uow.metadata.get(jobs[0])
            assert len(statements) == 1
            statements.clear()
            page = await uow.metadata.list(limit=5)
            assert len(statements) == 1
    finally:
        sa.event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    assert {item.workflow_name for item in page.items} == {"Eligibility check"}
    assert all(item.insuree_name == "Ada Lovelace" for item in page.items)
    assert all(item.all_account_names == ["portal-beta", "portal-gamma"] for item in page.items)


async def _progress_rows(store: Any, job: Any) -> list[tuple[int, int]]:
    async with store.sessions() as session:
        rows = await session.execute(
            sa.select(m.ExecutionProgress.completed_steps, m.ExecutionProgress.total_steps).where(
                m.ExecutionProgress.job_id == job
            )
        )
        return [tuple(r) for r in rows]


async def _row_steps(store: Any, job: Any) -> tuple[int, int]:
    async with store.sessions() as session:
        found = await session.get(m.ExecutionMetadata, job)
        assert found is not None
        return found.completed_steps, found.total_steps


async def test_progress_lives_beside_the_row_until_the_run_ends(store: Any, world: World) -> None:
    done, failed = await new_job(store, world), await new_job(store, world)
    async with store.unit(world.org) as uow:
        for job in (done, failed):
            await uow.metadata.start(job, started_at=T0)
            await uow.metadata.progress(job, completed_steps=4, total_steps=20)
    # In flight: the metadata row is untouched, the view shows the reported counters.
    assert await _progress_rows(store, done) == [(4, 20)]
    assert await _row_steps(store, done) == (0, 12)
    async with store.unit(world.org) as uow:
        assert (await uow.metadata.get(done)).progress_percent == Decimal("20.00")
        await uow.metadata.complete(done)
        await uow.metadata.fail(failed, "E", "m")
    # Finished: folded into the row, the side row gone.
    assert await _progress_rows(store, done) == []
    assert await _progress_rows(store, failed) == []
    assert await _row_steps(store, done) == (20, 20)
    assert await _row_steps(store, failed) == (4, 20)


async def test_deleting_a_job_deletes_its_metadata_and_progress(store: Any, world: World) -> None:
    job = await new_job(store, world)
    async with store.unit(world.org) as uow:
        await uow.metadata.start(job)
        await uow.metadata.progress(job, completed_steps=1, total_steps=3)
        await uow.jobs.delete(job)
    assert await _progress_rows(store, job) == []
    async with store.unit(world.org) as uow:
        with pytest.raises(NotFound):
            await uow.metadata.get(job)


async def test_a_deleted_credential_keeps_its_place_as_none(store: Any, world: World) -> None:
    job = await new_job(store, world)  # accounts beta (primary), gamma
    async with store.unit(world.org) as uow:
        await uow.session.execute(
            sa.delete(m.Credential).where(m.Credential.id == world.accounts[2])
        )
        view = await uow.metadata.get(job)
    assert view.all_account_ids == world.accounts[1:]
    assert view.all_account_names == ["portal-beta", None]
    assert view.account_count == 2


async def test_another_organizations_credential_in_a_job_reads_as_none(
    store: Any, world: World
) -> None:
    # jobs.credential_ids is an array (no foreign key): legacy rows, or a writer that
    # skipped the API, can name a credential of another organization. Its name must
    # not show, in get or in a listing.
    other = await make_world(store)
    job = await new_job(store, world)  # accounts beta (primary), gamma
    foreign = other.accounts[0]
    async with store.unit(world.org) as uow:
        await uow.session.execute(
            sa.update(m.Job)
            .where(m.Job.id == job)
            .values(credential_ids=[world.accounts[1], foreign])
        )
    async with store.unit(world.org) as uow:
        view = await uow.metadata.get(job)
        (listed,) = [item for item in (await uow.metadata.list()).items if item.job_id == job]
    for seen in (view, listed):
        assert seen.all_account_ids == [world.accounts[1], foreign]
        assert seen.all_account_names == ["portal-beta", None]
        assert seen.primary_account_name == "portal-beta"
