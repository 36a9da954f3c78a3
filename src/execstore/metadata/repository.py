"""Execution metadata: one slim row per job, written through its lifecycle, read with names.

    async with store.unit(org_id) as uow:
        await uow.metadata.create(job.id, total_steps=12)
        await uow.metadata.start(job.id)
        await uow.metadata.progress(job.id, completed_steps=3, total_steps=12)
        await uow.metadata.complete(job.id)          # or fail(job.id, "E_PORTAL", "...")
        view = await uow.metadata.get(job.id)        # names joined, one round trip
        page = await uow.metadata.list(statuses={ExecutionStatus.FAILED})

Every write is one statement that names the unit's organization: ``create`` copies the
workflow, client and claim submission from the job (so they cannot disagree with it)
and checks the job and the primary account belong to the organization in the same
``INSERT ... SELECT``; the transitions update only a row of this organization. Another
organization's job is NotFound, never touched.

Lifecycle: ``create`` (pending or queued) -> ``start`` (running) -> ``progress`` any number
of times -> ``complete`` or ``fail`` (failed, cancelled or timed out). A transition the
current status forbids raises InvalidTransition and changes nothing. Progress reports
go to ``execution_progress`` while the run is in flight and are folded into the row
when it finishes, so the row itself is written three times (created, started,
finished), and none of those writes changes an indexed column: PostgreSQL can apply
them as HOT updates (see :mod:`execstore.schema.metadata` for the measurements).
"""

from __future__ import annotations

import builtins
import datetime as dt
import uuid
from collections.abc import Collection
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from execstore.arguments import checks_arguments
from execstore.errors import (
    Conflict,
    InvalidArgument,
    InvalidTransition,
    NotFound,
    shown,
    translate_database_errors,
)
from execstore.metadata.listing import (
    ListFilter,
    list_cursor,
    list_params,
    list_position,
    list_query,
)
from execstore.metadata.summaries import read_summary
from execstore.metadata.types import (
    FAILURE_STATUSES,
    LIVE_STATUSES,
    ExecutionSummary,
    ExecutionView,
)
from execstore.metadata.views import get_query, to_view, to_views
from execstore.pages import DEFAULT_LIMIT, Page, check_limit
from execstore.repository import ScopedRepository, as_utc
from execstore.schema import models as m
from execstore.schema.base import TZ
from execstore.schema.enums import ExecutionStatus
from execstore.schema.types import GUID

__all__ = ["FAILURE_STATUSES", "LIVE_STATUSES", "MAX_STEPS", "MetadataRepository"]

MAX_STEPS: Final = 32767
"""Step counters are smallints."""
_MAX_DURATION_MS: Final = 2**31 - 1
_em = m.ExecutionMetadata
_table: sa.Table = _em.__table__  # type: ignore[assignment]
_progress: sa.Table = m.ExecutionProgress.__table__  # type: ignore[assignment]


def _in_flight(column: str) -> sa.ColumnElement[Any]:
    """The run's in-flight counter if it reported progress, else the row's own."""
    reported = (
        sa.select(_progress.c[column])
        .where(_progress.c.job_id == _table.c.job_id)
        .scalar_subquery()
    )
    return sa.func.coalesce(reported, _table.c[column])


@checks_arguments
class MetadataRepository(ScopedRepository[m.ExecutionMetadata]):
    """Write an execution's lifecycle and read dashboard views of this organization."""

    model_type = m.ExecutionMetadata

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # -- writes ------------------------------------------------------------------------

    async def create(
        self,
        job_id: uuid.UUID,
        *,
        primary_account_id: uuid.UUID | None = None,
        total_steps: int = 0,
        status: ExecutionStatus = ExecutionStatus.PENDING,
    ) -> None:
        """Start tracking ``job_id`` (pending, or queued) for dashboards.

        The workflow, client, claim submission and creation time come from the job; the
        primary account is ``primary_account_id`` or else the job's first credential.
        NotFound if the job or the primary account is not this organization's, Conflict
        if the job is tracked already; nothing is written then.
        """
        if status not in (ExecutionStatus.PENDING, ExecutionStatus.QUEUED):
            raise InvalidArgument(f"status: an execution starts pending or queued, not {status}")
        total = _steps("total_steps", total_steps)
        job = m.Job
        if primary_account_id is None:
            primary: Any = self._first_credential()
            checks: list[sa.ColumnElement[bool]] = []
        else:
            primary = sa.literal(primary_account_id, GUID())
            checks = [self._owned_credential(primary_account_id)]
        select = sa.select(
            job.id,
            job.organization_id,
            job.workflow_id,
            job.client_id,
            job.claim_submission_id,
            primary,
            job.created_at,
            sa.literal(int(status), sa.SmallInteger()),
            sa.literal(total, sa.SmallInteger()),
            sa.literal(0, sa.SmallInteger()),
        ).where(job.id == job_id, job.organization_id == self.organization_id, *checks)
        columns = [
            "job_id",
            "organization_id",
            "workflow_id",
            "client_id",
            "claim_submission_id",
            "primary_account_id",
            "created_at",
            "status",
            "total_steps",
            "completed_steps",
        ]
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(_table)
            .from_select(columns, select)
            .on_conflict_do_nothing(index_elements=["job_id"])
            .returning(_table.c.job_id)
        )
        with translate_database_errors():
            if (await self.session.execute(stmt)).first() is not None:
                return
            if not await self._job_is_ours(job_id):
                raise NotFound(f"jobs {job_id} not found")
            if primary_account_id is not None and not await self.session.scalar(
                sa.select(self._owned_credential(primary_account_id))
            ):
                raise NotFound(f"credentials {primary_account_id} not found (primary_account_id)")
        raise Conflict(f"execution metadata for job {job_id} already exists")

    async def start(self, job_id: uuid.UUID, *, started_at: dt.datetime | None = None) -> None:
        """Mark the execution running from ``started_at`` (default: the clock's now)."""
        when = self._when("started_at", started_at)
        await self._transition(
            job_id,
            "start",
            {ExecutionStatus.PENDING, ExecutionStatus.QUEUED},
            status=ExecutionStatus.RUNNING,
            started_at=when,
        )

    async def progress(self, job_id: uuid.UUID, completed_steps: int, total_steps: int) -> None:
        """Record progress; the percentage shown is derived (0 <= completed <= total)."""
        done = _steps("completed_steps", completed_steps)
        total = _steps("total_steps", total_steps)
        if done > total:
            raise InvalidArgument(f"completed_steps ({done}) cannot exceed total_steps ({total})")
        # Kept in execution_progress while the run is in flight (see schema.metadata);
        # the same statement checks the run is this organization's and still live.
        select = sa.select(
            _table.c.job_id,
            sa.literal(done, sa.SmallInteger()),
            sa.literal(total, sa.SmallInteger()),
        ).where(*self._live_row(job_id, LIVE_STATUSES))
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        upsert = insert(_progress).from_select(["job_id", "completed_steps", "total_steps"], select)
        stmt = upsert.on_conflict_do_update(
            index_elements=["job_id"],
            set_={
                "completed_steps": upsert.excluded.completed_steps,
                "total_steps": upsert.excluded.total_steps,
            },
        ).returning(_progress.c.job_id)
        with translate_database_errors():
            if (await self.session.execute(stmt)).first() is None:
                await self._refuse(job_id, "record progress of")

    async def complete(self, job_id: uuid.UUID, *, completed_at: dt.datetime | None = None) -> None:
        """Mark the execution completed (every step done) at ``completed_at``.

        ``completed_at`` defaults to the clock's now. ``duration_ms`` is the time since
        ``started_at`` (None if it never started).
        """
        when = self._when("completed_at", completed_at)
        await self._transition(
            job_id,
            "complete",
            LIVE_STATUSES,
            status=ExecutionStatus.COMPLETED,
            completed_at=when,
            duration_ms=self._duration_until(when),
            total_steps=_in_flight("total_steps"),
            completed_steps=_in_flight("total_steps"),
        )

    async def fail(
        self,
        job_id: uuid.UUID,
        error_code: str | None,
        error_message: str | None,
        *,
        status: ExecutionStatus = ExecutionStatus.FAILED,
        completed_at: dt.datetime | None = None,
    ) -> None:
        """Mark the execution failed (or cancelled, or timed out) with its error.

        The code and message are fitted to their columns (50 and 500 characters, ending
        in ``…[truncated]`` when cut); ``duration_ms`` is the time since ``started_at``.
        """
        if status not in FAILURE_STATUSES:
            raise InvalidArgument(f"status: {status} is not a failure status")
        when = self._when("completed_at", completed_at)
        await self._transition(
            job_id,
            "fail",
            LIVE_STATUSES,
            status=status,
            completed_at=when,
            duration_ms=self._duration_until(when),
            total_steps=_in_flight("total_steps"),
            completed_steps=_in_flight("completed_steps"),
            error_code=error_code,
            error_message=error_message,
        )

    # -- reads -------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID) -> ExecutionView:
        """The dashboard view of the job's execution (one round trip), or NotFound."""
        params = {"organization_id": self.organization_id, "job_id": job_id}
        with translate_database_errors():
            found = await get_query(self._dialect).rows(self.session, params)
        if not found:
            raise NotFound(f"execution metadata for job {job_id} not found")
        return to_view(found[0])

    async def find(self, job_id: uuid.UUID) -> ExecutionView | None:
        """The dashboard view of the job's execution, None if it has none (or the job is
        another organization's)."""
        try:
            return await self.get(job_id)
        except NotFound:
            return None

    async def summary(
        self,
        *,
        days: int = 30,
        first_day: dt.date | None = None,
        last_day: dt.date | None = None,
        workflow_id: uuid.UUID | None = None,
        live: bool = False,
    ) -> ExecutionSummary:
        """Counts by status and duration percentiles per workflow and UTC day.

        The range is ``first_day``..``last_day`` inclusive (default: the ``days`` days up
        to the clock's today, UTC). On PostgreSQL the figures come from the rollup ``execstore
        maintain`` refreshes (``refreshed_at`` says when); with ``live``, and always on
        SQLite, from a plain query over the executions.
        """
        if first_day is None and (not isinstance(days, int) or days < 1):
            raise InvalidArgument(f"days must be a positive integer, not {shown(days)}")
        last = last_day or self.clock.now().date()
        first = first_day or last - dt.timedelta(days=days - 1)
        if first > last:
            raise InvalidArgument(f"first_day {first} is after last_day {last}")
        with translate_database_errors():
            return await read_summary(
                self.session,
                self.organization_id,
                first,
                last,
                workflow_id=workflow_id,
                live=live or self._dialect != "postgresql",
                clock=self.clock,
            )

    async def list(
        self,
        *,
        statuses: Collection[ExecutionStatus | int] | None = None,
        workflow_id: uuid.UUID | None = None,
        client_id: uuid.UUID | None = None,
        error_code: str | None = None,
        created_from: dt.datetime | None = None,
        created_to: dt.datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page[ExecutionView]:
        """One page of executions, newest first, with names joined (one round trip).

        Filters combine with AND; ``created_from`` is inclusive, ``created_to``
        exclusive. Pass the returned ``next_cursor`` as ``cursor`` for the next page:
        pages stay exact while executions are created and updated. ``limit`` and
        ``cursor`` follow :mod:`execstore.pages`. No total is counted (see ``summary``).
        """
        size = check_limit(limit)
        filters = ListFilter.of(
            statuses=statuses,
            workflow_id=workflow_id,
            client_id=client_id,
            error_code=error_code,
            created_from=created_from,
            created_to=created_to,
        )
        after = None if cursor is None else list_position(cursor)
        query = list_query(self._dialect, filters, after=after is not None, limit=size)
        params = list_params(self.organization_id, filters, after)
        with translate_database_errors():
            found = await query.rows(self.session, params)
        items: builtins.list[ExecutionView] = to_views(found[:size])
        more = len(found) > size
        last = items[-1] if more and items else None
        return Page(
            items=items,
            next_cursor=None if last is None else list_cursor(last.created_at, last.job_id),
        )

    # -- internals ---------------------------------------------------------------------

    def _live_row(
        self, job_id: uuid.UUID, allowed: Collection[ExecutionStatus]
    ) -> builtins.list[sa.ColumnElement[bool]]:
        return [
            _table.c.organization_id == self.organization_id,
            _table.c.job_id == job_id,
            _table.c.status.in_(sorted(int(s) for s in allowed)),
        ]

    async def _transition(
        self,
        job_id: uuid.UUID,
        action: str,
        allowed: Collection[ExecutionStatus],
        **values: Any,
    ) -> None:
        stmt = (
            sa.update(_table)
            .where(*self._live_row(job_id, allowed))
            .values(**values)
            .returning(_table.c.job_id)
        )
        with translate_database_errors():
            if (await self.session.execute(stmt)).first() is None:
                await self._refuse(job_id, action)
            if _table.c.status.name in values and values["status"] not in LIVE_STATUSES:
                # Finished: the in-flight counters were folded into the row above.
                await self.session.execute(sa.delete(_progress).where(_progress.c.job_id == job_id))

    async def _refuse(self, job_id: uuid.UUID, action: str) -> None:
        """Raise why ``action`` changed nothing: NotFound, or InvalidTransition."""
        current = await self.session.scalar(
            sa.select(_table.c.status).where(
                _table.c.organization_id == self.organization_id, _table.c.job_id == job_id
            )
        )
        if current is None:
            raise NotFound(f"execution metadata for job {job_id} not found")
        raise InvalidTransition(
            f"cannot {action} job {job_id}: it is {ExecutionStatus(current).name.lower()}"
        )

    async def _job_is_ours(self, job_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            sa.select(sa.literal(1)).where(
                m.Job.id == job_id, m.Job.organization_id == self.organization_id
            )
        )
        return found is not None

    def _owned_credential(self, credential_id: uuid.UUID) -> sa.ColumnElement[bool]:
        return sa.exists().where(
            m.Credential.id == credential_id,
            m.Credential.organization_id == self.organization_id,
        )

    def _first_credential(self) -> sa.ColumnElement[Any]:
        if self._dialect == "postgresql":
            return sa.literal_column("(jobs.credential_ids)[1]", GUID())
        return sa.type_coerce(sa.func.json_extract(m.Job.credential_ids, "$[0]"), GUID())

    def _when(self, name: str, value: dt.datetime | None) -> dt.datetime:
        """``value`` in UTC, or the clock's now; InvalidArgument for a naive value."""
        if value is None:
            return self.clock.now()
        if value.tzinfo is None:
            raise InvalidArgument(f"{name} must be timezone-aware")
        return as_utc(value)

    def _duration_until(self, when: dt.datetime) -> sa.ColumnElement[Any]:
        """Milliseconds from ``started_at`` to ``when`` (None if never started), in SQL."""
        started = _table.c.started_at
        end = sa.literal(when, TZ)
        if self._dialect == "postgresql":
            ms: Any = sa.func.round(sa.extract("epoch", end - started) * 1000)
            bounded = sa.func.greatest(0, sa.func.least(ms, _MAX_DURATION_MS))
        else:
            ms = sa.func.round((sa.func.julianday(end) - sa.func.julianday(started)) * 86_400_000.0)
            bounded = sa.func.max(0, sa.func.min(ms, _MAX_DURATION_MS))
        return sa.case((started.is_(None), None), else_=sa.cast(bounded, sa.Integer()))


def _steps(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STEPS:
        raise InvalidArgument(
            f"{name} must be an integer from 0 to {MAX_STEPS}, not {shown(value)}"
        )
    return value
