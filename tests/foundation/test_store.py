"""The facade: one transaction per unit, scoped to one organization, on both backends."""

from __future__ import annotations

import uuid

import pytest

from execstore import ExecStore, load_settings
from execstore.errors import DatabaseUnavailable, IntegrityViolation, InvalidArgument, NotFound
from execstore.schema.models import Organization


class TestUnitOfWork:
    async def test_commits_on_success(self, store, org) -> None:
        async with store.unit(org) as uow:
            wf = await uow.reference.add_workflow("Eligibility check")
            cred = await uow.reference.add_credential("payer portal")
            job = await uow.jobs.create(workflow_id=wf.id, credential_ids=[cred.id])
        async with store.unit(org) as uow:
            got = await uow.jobs.get(job.id)
        assert got.workflow_id == wf.id
        assert got.status == "pending"
        assert len(got.credential_ids) == 1
        assert isinstance(got.credential_ids[0], uuid.UUID)

    async def test_rolls_back_and_runs_undo_hooks_on_error(self, store, org) -> None:
        undone: list[str] = []
        committed: list[str] = []
        job_id = uuid.uuid4()
        with pytest.raises(RuntimeError, match="processor crashed"):  # noqa: PT012
            async with store.unit(org) as uow:
                wf = await uow.reference.add_workflow("wf")
                await uow.jobs.create(workflow_id=wf.id, id=job_id)

                async def undo() -> None:
                    undone.append("blob")

                async def then() -> None:
                    committed.append("blob")

                uow.on_rollback(undo)
                uow.on_commit(then)
                raise RuntimeError("processor crashed")
        assert undone == ["blob"]
        assert committed == []
        async with store.unit(org) as uow:
            assert not await uow.jobs.exists(job_id)

    async def test_another_organizations_job_is_not_found(self, store, org) -> None:
        async with store.unit(org) as uow:
            wf = await uow.reference.add_workflow("wf")
            job = await uow.jobs.create(workflow_id=wf.id)
        other = uuid.uuid4()
        async with store.sessions() as session, session.begin():
            session.add(Organization(id=other, name="other"))
        async with store.unit(other) as uow:
            with pytest.raises(NotFound):
                await uow.jobs.get(job.id)
            assert not await uow.jobs.exists(job.id)

    async def test_driver_errors_are_translated(self, store, org) -> None:
        with pytest.raises(IntegrityViolation) as caught:  # noqa: PT012
            async with store.unit(org) as uow:
                same = uuid.uuid4()
                await uow.reference.add_workflow("once", id=same)
                await uow.reference.add_workflow("twice", id=same)  # duplicate primary key
        assert caught.value.__cause__ is not None

    async def test_an_unknown_rag_mode_or_an_organization_that_is_not_a_uuid_is_refused(
        self, store, org
    ) -> None:
        for mode in ("bogus", "", 3, None.__class__):
            with pytest.raises(InvalidArgument, match=r"rag_mode must be one of .*normalized"):
                async with store.unit(org, rag_mode=mode):
                    pass
        for organization in (str(org), org.int, None, b"x"):
            with pytest.raises(InvalidArgument, match=r"organization_id must be a uuid\.UUID"):
                async with store.unit(organization):
                    pass
        async with store.unit(org, rag_mode="normalized") as uow:
            assert uow.rag_mode.value == "normalized"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://nobody@127.0.0.1:1/x",  # nothing listens there
        "sqlite+aiosqlite:///{tmp}",  # a directory
    ],
)
async def test_open_on_an_unreachable_database_is_database_unavailable(url: str, tmp_path) -> None:
    settings = load_settings(database_url=url.format(tmp=tmp_path), blob_url=f"file:{tmp_path}")
    with pytest.raises(DatabaseUnavailable, match="cannot open the database"):
        async with ExecStore.open(settings):
            pass
