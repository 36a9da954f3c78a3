"""The front door: ``ExecStore.open(settings)`` and one unit of work per organization.

    async with ExecStore.open(settings) as store:
        async with store.unit(organization_id) as uow:
            job = await uow.jobs.create(workflow_id=...)
            await uow.results.save(job.id, output)
        # committed here; rolled back if the block raised

A unit is one transaction scoped to one organization; its repositories share the
session and never commit on their own. Archive blobs written inside a unit whose
transaction then fails are deleted on the way out (the reconciler catches the rest).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from execstore.config import Settings, load_settings
from execstore.db import create_engine, create_session_factory
from execstore.errors import translate_database_errors
from execstore.migrations.runner import require_head
from execstore.repositories.reference import JobRepository, ReferenceRepository

if TYPE_CHECKING:
    from execstore.blob import Archives, BlobStore
    from execstore.repositories.results import ResultRepository

__all__ = ["ExecStore", "UnitOfWork"]

log = logging.getLogger("execstore")


class UnitOfWork:
    """One transaction for one organization, with the repositories bound to it."""

    def __init__(self, store: ExecStore, session: AsyncSession, organization_id: uuid.UUID):
        self.store = store
        self.session = session
        self.organization_id = organization_id
        # Lets repositories without a unit argument (JobRepository.delete) reach on_commit.
        session.info["execstore.unit"] = self
        self._on_rollback: list[Callable[[], Awaitable[Any]]] = []
        self._on_commit: list[Callable[[], Awaitable[Any]]] = []

    def on_rollback(self, undo: Callable[[], Awaitable[Any]]) -> None:
        """Run ``undo`` if this unit's transaction does not commit (best effort)."""
        self._on_rollback.append(undo)

    def on_commit(self, then: Callable[[], Awaitable[Any]]) -> None:
        """Run ``then`` after this unit's transaction commits (best effort, e.g. blob deletes)."""
        self._on_commit.append(then)

    def _scope(self) -> dict[str, Any]:
        return {"session": self.session, "organization_id": self.organization_id}

    @cached_property
    def jobs(self) -> JobRepository:
        """Jobs of this organization."""
        return JobRepository(**self._scope())

    @cached_property
    def reference(self) -> ReferenceRepository:
        """Workflows, clients, claim submissions and credentials of this organization."""
        return ReferenceRepository(**self._scope())

    @cached_property
    def results(self) -> ResultRepository:
        """Job results: slim summaries, screenshots and archived detail."""
        from execstore.archival.result_format import ScreenshotUrls
        from execstore.repositories.results import ResultRepository

        return ResultRepository(
            **self._scope(),
            archives=self.store.archives,
            unit=self,
            screenshot_urls=ScreenshotUrls(self.store.settings.screenshot_base_url),
        )


class ExecStore:
    """An opened execstore: engine, session factory, blob store and archive cache."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        blobs: BlobStore,
        archives: Archives,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = create_session_factory(engine)
        self.blobs = blobs
        self.archives = archives

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: Settings | None = None, *, check_schema: bool = True
    ) -> AsyncIterator[ExecStore]:
        """An ExecStore for ``settings`` (default: from the environment), closed on exit.

        With ``check_schema`` (the default) it raises MigrationRequired unless the
        database is at the package's head revision.
        """
        from execstore.blob import ArchiveCache, Archives, open_blob_store

        settings = settings or load_settings()
        engine = create_engine(settings)
        blobs = None
        try:
            if check_schema:
                async with engine.connect() as conn:
                    await require_head(conn)
            blobs = open_blob_store(settings)
            cache = ArchiveCache(max_bytes=settings.cache_bytes)
            archives = Archives(blobs, cache=cache, codec=settings.archive_codec)
            yield cls(settings, engine, blobs, archives)
        finally:
            if blobs is not None:
                await blobs.close()
            await engine.dispose()

    @asynccontextmanager
    async def unit(self, organization_id: uuid.UUID) -> AsyncIterator[UnitOfWork]:
        """One transaction scoped to ``organization_id``: committed on success."""
        async with self.sessions() as session:
            uow = UnitOfWork(self, session, organization_id)
            try:
                with translate_database_errors():
                    async with session.begin():
                        yield uow
            except BaseException:
                for undo in reversed(uow._on_rollback):
                    try:
                        await undo()
                    except Exception:  # the reconciler repairs what this misses
                        log.warning("rollback clean-up failed", exc_info=True)
                raise
            for then in uow._on_commit:
                try:
                    await then()
                except Exception:  # the reconciler repairs what this misses
                    log.warning("post-commit clean-up failed", exc_info=True)
