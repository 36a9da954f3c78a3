"""The front door: ``ExecStore.open(settings)`` and one unit of work per organization.

    async with ExecStore.open(settings) as store:
        async with store.unit(organization_id) as uow:
            job = await uow.jobs.create(workflow_id=...)
            await uow.results.save(job.id, output)
        # committed here; rolled back if the block raised

``ExecStore.open(settings, clock=...)`` sets the one clock every repository and operator
job of the store reads (``store.clock``; the wall clock by default).

A unit is one transaction scoped to one organization; its repositories share the
session and never commit on their own. Blob work follows the transaction: archives
written inside a unit whose transaction then fails are deleted on the way out, blobs of
deleted rows only after the commit (the reconciler catches what a crash leaves).

This module wires the capability packages together; they never import it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from execstore.archival import ArchiveKind
from execstore.audit import AuditArchives, AuditRepository
from execstore.blob import ArchiveCache, Archives, BlobStore, open_blob_store
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.config import RagMode, Settings, load_settings
from execstore.db import create_engine, create_session_factory
from execstore.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidArgument,
    first_line,
    shown,
    translate_database_errors,
)
from execstore.jobs import JobRepository, ReferenceRepository
from execstore.logs import LogArchives, LogRepository, forget_job_logs
from execstore.metadata import MetadataRepository
from execstore.migrations.runner import rag_contracted_revisions, require_compatible
from execstore.operations import (
    BatchReport,
    Progress,
    RetentionKind,
    apply_retention,
    retention_kind,
)
from execstore.rag import RagRepository, ShadowStats, read_stats
from execstore.repository import TransactionHooks
from execstore.results import (
    ResultArchives,
    ResultRepository,
    ScreenshotUrls,
    forget_result_archive,
)

__all__ = ["ExecStore", "UnitOfWork"]


class UnitOfWork(TransactionHooks):
    """One transaction for one organization, with the repositories bound to it."""

    def __init__(
        self,
        store: ExecStore,
        session: AsyncSession,
        organization_id: uuid.UUID,
        *,
        rag_mode: RagMode | None = None,
    ):
        super().__init__()
        self.store = store
        self.session = session
        self.organization_id = organization_id
        self.rag_mode = rag_mode or store.settings.rag_mode

    @cached_property
    def jobs(self) -> JobRepository:
        """Jobs of this organization (``delete`` also removes their archives)."""
        return JobRepository(
            session=self.session,
            organization_id=self.organization_id,
            hooks=self,
            clock=self.store.clock,
            on_delete=[
                forget_result_archive(self.store.archives),
                forget_job_logs(self.store.archives, self.organization_id),
            ],
        )

    @cached_property
    def logs(self) -> LogRepository:
        """Execution log lines: append, read (hot and archived alike), retention."""
        settings = self.store.settings
        return LogRepository(
            session=self.session,
            organization_id=self.organization_id,
            hooks=self,
            archives=self.store.archives,
            sessions=self.store.sessions,
            hot_days=settings.log_hot_days,
            default_retention_days=settings.log_retention_days,
            clock=self.store.clock,
        )

    @cached_property
    def reference(self) -> ReferenceRepository:
        """The organization itself, its workflows, clients, claim submissions and credentials."""
        return ReferenceRepository(
            session=self.session,
            organization_id=self.organization_id,
            hooks=self,
            clock=self.store.clock,
        )

    @cached_property
    def results(self) -> ResultRepository:
        """Job results: slim summaries, screenshots and archived detail."""
        return ResultRepository(
            session=self.session,
            organization_id=self.organization_id,
            hooks=self,
            archives=self.store.archives,
            sessions=self.store.sessions,
            screenshot_urls=ScreenshotUrls(self.store.settings.screenshot_base_url),
            clock=self.store.clock,
        )

    @cached_property
    def audit(self) -> AuditRepository:
        """PHI access records: written on their own (they survive this unit's rollback)."""
        return AuditRepository(
            session=self.session,
            organization_id=self.organization_id,
            sessions=self.store.sessions,
            archives=self.store.archives,
            hooks=self,
            checkpoint_every=dt.timedelta(hours=self.store.settings.audit_checkpoint_hours),
            clock=self.store.clock,
        )

    @cached_property
    def rag(self) -> RagRepository:
        """Jobs' RAG context, through this unit's ``rag_mode`` (EXECSTORE_RAG_MODE by default)."""
        return RagRepository(
            session=self.session,
            organization_id=self.organization_id,
            hooks=self,
            mode=self.rag_mode,
            sessions=self.store.sessions,
            shadow_sample_rate=self.store.settings.rag_shadow_sample_rate,
            clock=self.store.clock,
        )

    @cached_property
    def metadata(self) -> MetadataRepository:
        """Execution metadata: lifecycle writes, dashboard views, listings, summaries."""
        return MetadataRepository(
            session=self.session,
            organization_id=self.organization_id,
            hooks=self,
            clock=self.store.clock,
        )


class ExecStore:
    """An opened execstore: engine, session factory, blob store and archive cache."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        blobs: BlobStore,
        archives: Archives,
        *,
        revision: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.clock = clock
        """What time it is for every repository, archive and operator job of this store."""
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = create_session_factory(engine)
        self.blobs = blobs
        self.archives = archives
        self.revision = revision
        """The database's schema revision when the store was opened."""

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        check_schema: bool = True,
    ) -> AsyncIterator[ExecStore]:
        """An ExecStore for ``settings`` (default: from the environment), closed on exit.

        ``clock`` (default: the wall clock, :data:`~execstore.clock.SYSTEM_CLOCK`) is what
        time it is for everything the store decides and stamps: pass a
        :class:`~execstore.clock.ManualClock` to run years of archival and retention in a
        test. With ``check_schema`` (the default) it raises MigrationRequired unless the
        database is at a revision this package can use (head, or head without the
        optional contract steps: see ``execstore db upgrade``).
        """
        clock = clock or SYSTEM_CLOCK
        settings = settings or load_settings()
        engine = create_engine(settings)
        blobs = None
        try:
            revision = None
            if check_schema:
                try:
                    async with engine.connect() as conn:
                        revision = await require_compatible(conn)
                except (OSError, sa_exc.DBAPIError) as exc:
                    where = engine.url.render_as_string(hide_password=True)
                    raise DatabaseUnavailable(
                        f"cannot open the database {where}: {first_line(exc)}"
                    ) from exc
            blobs = open_blob_store(settings)
            cache = ArchiveCache(max_bytes=settings.cache_bytes)
            archives = Archives(blobs, cache=cache, codec=settings.archive_codec, clock=clock)
            store = cls(settings, engine, blobs, archives, revision=revision, clock=clock)
            store.require_rag_mode(settings.rag_mode)
            yield store
        finally:
            if blobs is not None:
                await blobs.close()
            await engine.dispose()

    @property
    def archive_kinds(self) -> list[ArchiveKind]:
        """Every kind of archive the reconciler checks."""
        return [ResultArchives(), LogArchives(), AuditArchives()]

    def require_rag_mode(self, mode: RagMode) -> None:
        """ConfigurationError if ``mode`` needs the legacy RAG table and it is gone."""
        if mode.uses_legacy_table and self.revision in rag_contracted_revisions():
            raise ConfigurationError(
                f"EXECSTORE_RAG_MODE={mode.value} needs execution_rag_rules_legacy, which "
                f"contract_rag_rules dropped (database at {self.revision}): use "
                f"{RagMode.NORMALIZED.value}"
            )

    async def apply_retention(
        self,
        kind: RetentionKind | str,
        *,
        days: int | None = None,
        organization_id: uuid.UUID | None = None,
        dry_run: bool = False,
        on_progress: Progress | None = None,
    ) -> BatchReport:
        """Delete ``kind``'s (``logs`` or ``audit``) archives past their retention.

        ``days`` defaults to the setting (``EXECSTORE_LOG_RETENTION_DAYS``, for log
        organizations without their own, or ``EXECSTORE_AUDIT_RETENTION_DAYS``); see
        :func:`execstore.operations.apply_retention`.
        """
        which = retention_kind(kind)
        if which is RetentionKind.LOGS:
            default = self.settings.log_retention_days
        else:
            default = self.settings.audit_retention_days
        return await apply_retention(
            self.sessions,
            self.archives,
            which,
            days=default if days is None else days,
            hot_days=self.settings.log_hot_days,
            organization_id=organization_id,
            dry_run=dry_run,
            on_progress=on_progress,
            clock=self.clock,
        )

    async def rag_shadow_stats(self) -> ShadowStats:
        """Shadow-read comparisons and mismatches so far (every process's, from the database)."""
        return await read_stats(self.sessions)

    @asynccontextmanager
    async def unit(
        self, organization_id: uuid.UUID, *, rag_mode: RagMode | str | None = None
    ) -> AsyncIterator[UnitOfWork]:
        """One transaction scoped to ``organization_id``: committed on success.

        ``rag_mode`` overrides EXECSTORE_RAG_MODE for this unit's ``uow.rag``. An
        ``organization_id`` that is not a UUID, or an unknown ``rag_mode``, raises
        InvalidArgument before anything is opened.
        """
        if not isinstance(organization_id, uuid.UUID):
            raise InvalidArgument(
                f"organization_id must be a uuid.UUID, not {type(organization_id).__name__}"
            )
        mode = None if rag_mode is None else _rag_mode(rag_mode)
        if mode is not None:
            self.require_rag_mode(mode)
        async with self.sessions() as session:
            uow = UnitOfWork(self, session, organization_id, rag_mode=mode)
            try:
                with translate_database_errors():
                    async with session.begin():
                        yield uow
            except BaseException:
                await uow.rolled_back()
                raise
            await uow.committed()


def _rag_mode(value: RagMode | str) -> RagMode:
    """``value`` as a RagMode; InvalidArgument naming the modes if it is none of them."""
    try:
        return RagMode(value)
    except (ValueError, TypeError) as exc:
        known = ", ".join(mode.value for mode in RagMode)
        raise InvalidArgument(f"rag_mode must be one of {known}, not {shown(value)}") from exc
