"""Job results: a slim summary in ``jobs.result``, screenshot rows, the full output in a blob.

    async with store.unit(org_id) as uow:
        await uow.results.save(job.id, output)       # the processor's whole output
        summary = await uow.results.get(job.id)      # no blob I/O (NotFound: no result)
        maybe = await uow.results.find(job.id)       # the same, or None if no result yet
        detail = await uow.results.detail(job.id)    # summary + full output (cached)
        shots = await uow.results.screenshots(job.id)

``output`` must be a JSON object under the contract of :mod:`execstore.jsonvalues`:
JSON values round-trip exactly (``detail().output == output``); anything else raises
InvalidJsonValue naming its JSON path, before anything is written. ``save`` does not
touch the job's status or times: the orchestration service sets them
(``uow.jobs.set_status``).

Results are write-once facts of a finished run. Saving the same output again is a no-op;
saving a different output for a job that already has one raises Conflict (a re-run is a
new job). The order of a save is: upload the full output to its deterministic key, then
insert the archive row and screenshot rows and rewrite ``jobs.result`` in the caller's
transaction. If the upload fails nothing is written; if the transaction fails afterwards
the blob is deleted again, but only when this save created it (``unit.on_rollback``);
anything a crash leaves behind is found by the reconciler (``execstore archive reconcile``).

The stored formats (summary keys, screenshot URL convention) are described in
:mod:`execstore.results.format`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from execstore.arguments import checks_arguments
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import (
    ArchiveMissing,
    Conflict,
    InvalidJsonValue,
    NotFound,
    translate_database_errors,
)
from execstore.jsonvalues import check_json
from execstore.repository import ScopedRepository, TransactionHooks
from execstore.results.format import (
    ARCHIVED,
    ScreenshotUrls,
    SummaryFields,
    archive_values,
    as_utc,
    is_summary,
    parse_result_key,
    parse_time,
    read_summary,
    ref_from_row,
    result_archive_key,
    screenshot_rows,
    summarize,
)
from execstore.results.types import ResultDetail, ResultSummary, ScreenshotRecord
from execstore.schema import models as m

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from execstore.blob import Archives

__all__ = ["ResultRepository"]


@checks_arguments
class ResultRepository(ScopedRepository[m.Job]):
    """Save and read the results of this organization's jobs."""

    model_type = m.Job

    def __init__(
        self,
        *,
        session: AsyncSession,
        organization_id: uuid.UUID,
        archives: Archives,
        hooks: TransactionHooks | None = None,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        screenshot_urls: ScreenshotUrls | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(session=session, organization_id=organization_id, hooks=hooks, clock=clock)
        self.archives = archives
        # A session of its own (outside the unit's transaction) for the rollback check.
        self.sessions = sessions
        self.screenshot_urls = screenshot_urls or ScreenshotUrls(None)

    async def save(self, job_id: uuid.UUID, output: dict[str, Any]) -> ResultSummary:
        """The stored summary of ``output``, saved as this job's result (write-once).

        ``output`` is the processor's whole output, a JSON object (camelCase or snake_case
        keys; unknown keys are kept in the archive). Raises InvalidJsonValue (naming the
        JSON path) for anything that is not a JSON value, NotFound for a job of another
        organization, Conflict if the job already has a different result, BlobStoreError
        or an Archive* error if the upload fails; in every case nothing is written.
        The job's status and times are left as they are.
        """
        if type(output) is not dict:
            raise InvalidJsonValue("$", f"a result is a JSON object (dict), not {_kind(output)}")
        check_json(output)
        document: dict[str, Any] = output
        job = await self._locked_job(job_id)
        existing = await self._archive_row(job_id)
        if existing is not None:
            await self._require_same(existing, document, job.created_at)
            return _summary_model(job_id, job.result or {}, lost=existing.lost)
        if job.result is not None and not is_summary(job.result):
            if job.result != document:
                raise Conflict(f"job {job_id} already has a different (legacy) result")
            return _summary_model(job_id, job.result)

        key = result_archive_key(self.organization_id, job_id, job.created_at, self.archives.codec)
        stored = await self.archives.store_document(key, document)
        ref = stored.ref
        if stored.created and self.hooks is not None:
            self.hooks.on_rollback(lambda: self._forget_upload(key))
        summary = summarize(document, state=ARCHIVED)
        fallback = parse_time(document.get("completedAt") or document.get("completed_at"))
        shots = document.get("screenshots")
        rows = screenshot_rows(
            shots if isinstance(shots, list) else [],
            urls=self.screenshot_urls,
            organization_id=self.organization_id,
            job_id=job_id,
            fallback_time=fallback or as_utc(job.created_at),
        )
        with translate_database_errors():
            await self.session.execute(
                sa.insert(m.JobResultArchive).values(
                    **archive_values(job_id, ref, archived_at=self.clock.now())
                )
            )
            if rows:
                await self.session.execute(
                    sa.insert(m.ExecutionScreenshot), [row.values(job_id) for row in rows]
                )
            job.result = summary
            await self.session.flush()
        return _summary_model(job_id, summary)

    async def get(self, job_id: uuid.UUID) -> ResultSummary:
        """The job's result summary (never touches blobs); NotFound if the job has no result
        yet (or is another organization's)."""
        found = await self.find(job_id)
        if found is None:
            raise NotFound(f"job {job_id} has no result")
        return found

    async def find(self, job_id: uuid.UUID) -> ResultSummary | None:
        """The job's result summary (never touches blobs), None if the job has no result yet
        (or is another organization's)."""
        with translate_database_errors():
            found = (
                await self.session.execute(
                    self._scoped(
                        sa.select(m.Job.result, m.JobResultArchive.lost)
                        .outerjoin(m.JobResultArchive, m.JobResultArchive.job_id == m.Job.id)
                        .where(m.Job.id == job_id)
                    )
                )
            ).one_or_none()
        if found is None or found[0] is None:
            return None
        result, lost = found
        return _summary_model(job_id, result, lost=bool(lost))

    async def detail(self, job_id: uuid.UUID) -> ResultDetail:
        """The summary and full output (from the archive, through the cache).

        Raises NotFound if the job has no result yet (or is another organization's),
        ArchiveMissing when the blob is gone (known to the reconciler or not) and
        ArchiveCorrupt when its bytes do not match the recorded sha256.
        """
        with translate_database_errors():
            found = (
                await self.session.execute(
                    self._scoped(
                        sa.select(m.Job.result, m.Job.created_at, m.JobResultArchive)
                        .outerjoin(m.JobResultArchive, m.JobResultArchive.job_id == m.Job.id)
                        .where(m.Job.id == job_id)
                    )
                )
            ).one_or_none()
        if found is None:
            raise NotFound(f"jobs {job_id} not found")
        result, created_at, archive = found
        if result is None:
            raise NotFound(f"job {job_id} has no result")
        summary = _summary_model(job_id, result)
        if summary.legacy:
            return ResultDetail(summary=summary, output=dict(result))
        if archive is None:
            raise ArchiveMissing(f"job_result_archives/{job_id}")
        ref = ref_from_row(archive, organization_id=self.organization_id, created_at=created_at)
        if archive.lost:
            raise ArchiveMissing(ref.key)  # marked by the reconciler: no I/O
        output = await self.archives.read_document(ref)
        return ResultDetail(summary=summary, output=output)

    async def screenshots(self, job_id: uuid.UUID) -> list[ScreenshotRecord]:
        """The job's screenshots in order, each with its URL rebuilt (no blob I/O)."""
        result = await self._result(job_id)
        with translate_database_errors():
            rows = (
                await self.session.scalars(
                    sa.select(m.ExecutionScreenshot)
                    .where(m.ExecutionScreenshot.job_id == job_id)
                    .order_by(m.ExecutionScreenshot.ordinal)
                )
            ).all()
        if not rows and result is not None and not is_summary(result):
            return self._legacy_screenshots(job_id, result)
        return [
            ScreenshotRecord(
                job_id=job_id,
                ordinal=row.ordinal,
                step_index=None if row.step_index < 0 else row.step_index,
                url=self.screenshot_urls.url(row.key_suffix, self.organization_id, job_id),
                width=row.width,
                height=row.height,
                captured_at=as_utc(row.captured_at),
            )
            for row in rows
        ]

    # -- internals ---------------------------------------------------------------------

    async def _locked_job(self, job_id: uuid.UUID) -> m.Job:
        # FOR UPDATE serializes concurrent saves of one job on PostgreSQL, so the second
        # sees the first's archive row; SQLite ignores it and has a single writer anyway.
        with translate_database_errors():
            job: m.Job | None = await self.session.scalar(
                self._scoped(sa.select(m.Job).where(m.Job.id == job_id)).with_for_update()
            )
        if job is None:
            raise NotFound(f"jobs {job_id} not found")
        return job

    async def _result(self, job_id: uuid.UUID) -> dict[str, Any] | None:
        with translate_database_errors():
            found = (
                await self.session.execute(
                    self._scoped(sa.select(m.Job.result).where(m.Job.id == job_id))
                )
            ).one_or_none()
        if found is None:
            raise NotFound(f"jobs {job_id} not found")
        result: dict[str, Any] | None = found[0]
        return result

    async def _archive_row(self, job_id: uuid.UUID) -> m.JobResultArchive | None:
        with translate_database_errors():
            return await self.session.get(m.JobResultArchive, job_id)

    async def _require_same(
        self, existing: m.JobResultArchive, document: dict[str, Any], created_at: dt.datetime
    ) -> None:
        _, encoder = self.archives.encode_document(document)
        if encoder.sha256 == bytes(existing.sha256):
            return
        # Another codec or level gives other bytes for the same output: compare the JSON.
        ref = ref_from_row(existing, organization_id=self.organization_id, created_at=created_at)
        if await self.archives.read_document(ref) != document:
            raise Conflict(
                f"job {existing.job_id} already has a different result (results are write-once)"
            )

    async def _forget_upload(self, key: str) -> None:
        """Delete a blob this save created, unless a committed row already points at it."""
        if self.sessions is None:
            await self.archives.delete(key)
            return
        # A concurrent identical save may have committed a row for the very same key.
        if not await self._committed_key(key):
            await self.archives.delete(key)

    async def _committed_key(self, key: str) -> bool:
        """Whether a committed ``job_result_archives`` row points at ``key``."""
        named = parse_result_key(key)
        if named is None or self.sessions is None:
            return False
        async with self.sessions() as session:
            with translate_database_errors():
                found = (
                    await session.execute(
                        sa.select(m.JobResultArchive, m.Job.created_at)
                        .join(m.Job, m.Job.id == m.JobResultArchive.job_id)
                        .where(m.JobResultArchive.job_id == named[1])
                    )
                ).one_or_none()
        if found is None:
            return False
        ref = ref_from_row(found[0], organization_id=named[0], created_at=found[1])
        return ref.key == key

    def _legacy_screenshots(
        self, job_id: uuid.UUID, result: Mapping[str, Any]
    ) -> list[ScreenshotRecord]:
        shots = result.get("screenshots")
        records = []
        for ordinal, shot in enumerate(shots if isinstance(shots, list) else []):
            if not isinstance(shot, Mapping) or not isinstance(shot.get("url"), str):
                continue
            step = shot.get("stepIndex", shot.get("step_index"))
            captured = parse_time(shot.get("capturedAt", shot.get("captured_at")))
            records.append(
                ScreenshotRecord(
                    job_id=job_id,
                    ordinal=ordinal,
                    step_index=step if isinstance(step, int) and step >= 0 else None,
                    url=shot["url"],
                    width=_int_or_none(shot.get("width")),
                    height=_int_or_none(shot.get("height")),
                    captured_at=captured or dt.datetime.fromtimestamp(0, dt.UTC),
                )
            )
        return records


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _summary_model(
    job_id: uuid.UUID, result: Mapping[str, Any], *, lost: bool = False
) -> ResultSummary:
    fields: SummaryFields = read_summary(result)
    return ResultSummary(
        job_id=job_id,
        success=fields.success,
        total_steps=fields.total_steps,
        successful_steps=fields.successful_steps,
        failed_steps=fields.failed_steps,
        duration_ms=fields.duration_ms,
        screenshot_count=fields.screenshot_count,
        archived=fields.state == ARCHIVED,
        archive_missing=lost,
        legacy=not is_summary(result),
    )
