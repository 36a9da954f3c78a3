"""The one query that turns slim rows into dashboard views: names joined, in one statement.

``get``, ``list`` and the backfill check all read through :func:`view_select`: the
inner query picks the rows (one job, or one page), the outer query joins the names of
the workflow, client, claim submission (insuree) and primary account, the job's
credential ids and their names, and the step counters of a run still in flight
(``execution_progress``), so a page of 50 executions is one round trip and the joins
run for those 50 rows only, never for the rows a filter skipped.

Accounts come from ``jobs.credential_ids`` (the plan removed the copies from the
metadata row): the names of the job's credentials and of its primary account
(``id = ANY(array_append(credential_ids, primary_account_id))`` on PostgreSQL,
``json_each`` on SQLite) come back as one ``{id: name}`` object per row, one lookup for
both, and are laid out in the job's order in Python; a credential deleted since reads
as None. Credentials are matched within the row's organization only.

On PostgreSQL the statements run as the driver's own SQL (:class:`ViewQuery`): compiled
once, sent through ``exec_driver_sql`` with positional values, so a page costs neither
SQLAlchemy's per-call cache-key walk of this many-joined statement nor its per-value
result processing (together they cost more than the joins themselves).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from execstore.metadata.types import LIVE_STATUSES, ExecutionView
from execstore.repository import as_utc
from execstore.schema import models as m
from execstore.schema.enums import ExecutionStatus

__all__ = [
    "VIEW_ORDER",
    "ViewQuery",
    "get_query",
    "get_statement",
    "progress_percent",
    "row_columns",
    "to_view",
    "to_views",
    "view_select",
    "views_of_jobs_statement",
]

_em = m.ExecutionMetadata
_em_table: sa.Table = _em.__table__  # type: ignore[assignment]

row_columns: tuple[str, ...] = tuple(c.name for c in _em_table.columns)
"""The slim row's columns, as the inner query must select them."""

VIEW_ORDER = ("created_at", "job_id")
"""Listing order (both descending): newest first, job id breaking ties."""


def progress_percent(completed_steps: int, total_steps: int) -> Decimal:
    """``completed / total`` as a percentage with two decimals (0 when there are no steps)."""
    if total_steps <= 0:
        return Decimal("0.00")
    share = Decimal(100 * min(completed_steps, total_steps)) / Decimal(total_steps)
    return share.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _account_names(rows: Any, dialect: str) -> sa.ScalarSelect[Any]:
    # Per row: {credential id: name} of the job's credentials and its primary account in
    # the row's organization (one lookup for both); to_view lays the names out in the
    # job's order and picks the primary account's (None: deleted since).
    cred = sa.orm.aliased(m.Credential, name="account")
    if dialect == "postgresql":
        pairs: Any = sa.func.json_object_agg(cred.id, cred.name)
        ids: Any = sa.func.array_append(m.Job.credential_ids, rows.c.primary_account_id)
        wanted = cred.id == sa.func.any(ids)
    else:
        pairs = sa.func.json_group_object(cred.id, cred.name)
        ids = sa.func.json_each(m.Job.credential_ids).table_valued("value", name="account_ids")
        wanted = sa.or_(
            cred.id.in_(sa.select(ids.c.value).scalar_subquery()),
            cred.id == rows.c.primary_account_id,
        )
    return (
        sa.select(sa.type_coerce(pairs, sa.JSON()))
        .where(cred.organization_id == rows.c.organization_id, wanted)
        .scalar_subquery()
    )


def _page_account_names(paged: sa.CTE, organization: Any) -> sa.ScalarSelect[Any]:
    # Once for the whole page (PostgreSQL, one organization): {id: name} of every
    # credential and primary account its rows name, each looked up once. Per row, this
    # subquery cost half the page's time.
    cred = sa.orm.aliased(m.Credential, name="account")
    ids = sa.func.array_append(paged.c.credential_ids, paged.c.primary_account_id)
    wanted = sa.select(sa.func.unnest(ids)).select_from(paged).correlate(None)
    # As text: every row carries the same map, and to_views decodes it once per page.
    pairs = sa.cast(sa.func.json_object_agg(cred.id, cred.name), sa.Text())
    return (
        sa.select(pairs)
        .where(cred.organization_id == organization, cred.id.in_(wanted))
        .correlate(None)
        .scalar_subquery()
    )


def view_select(
    rows: sa.Subquery, dialect: str, *, organization: Any = None, newest_first: bool = False
) -> sa.Select[Any]:
    """The views of the slim rows ``rows`` selects (any subquery of ``row_columns``).

    ``organization`` (a value or bound expression) says every row is of that one
    organization, as in a listing or ``get``: on PostgreSQL the rows and their jobs are
    then read once into a CTE and the account names looked up once for all of them.
    ``newest_first`` orders the views as a listing does.
    """
    postgres = dialect == "postgresql"
    base: Any
    if postgres and organization is not None:
        base = (
            sa.select(rows, m.Job.credential_ids)
            .join_from(rows, m.Job, m.Job.id == rows.c.job_id)
            .cte("paged")
        )
        source: Any = base
        account_ids, names = base.c.credential_ids, _page_account_names(base, organization)
    else:
        base = rows
        source = rows.join(m.Job, m.Job.id == rows.c.job_id)
        account_ids, names = m.Job.credential_ids, _account_names(rows, dialect)
    wf = sa.orm.aliased(m.Workflow, name="wf")
    client = sa.orm.aliased(m.Client, name="client")
    claim = sa.orm.aliased(m.ClaimSubmission, name="claim")
    org = base.c.organization_id
    steps = m.ExecutionProgress
    progress: Any
    if postgres:
        # Only a run in flight has counters in execution_progress: for the others the
        # lookup is skipped (a one-time filter, kept by OFFSET 0 from being flattened).
        live = sa.or_(*(base.c.status == sa.literal_column(str(int(s))) for s in LIVE_STATUSES))
        progress = (
            sa.select(steps.completed_steps, steps.total_steps)
            .where(steps.job_id == base.c.job_id, live)
            .offset(sa.literal_column("0"))
            .lateral("progress")
        )
        on_progress: Any = sa.true()
    else:
        progress = sa.select(steps.job_id, steps.completed_steps, steps.total_steps).subquery(
            "progress"
        )
        on_progress = progress.c.job_id == base.c.job_id
    counters = {
        name: sa.func.coalesce(progress.c[name], base.c[name])
        for name in ("completed_steps", "total_steps")
    }
    stmt = sa.select(
        *[counters[name].label(name) if name in counters else base.c[name] for name in row_columns],
        wf.name.label("workflow_name"),
        client.name.label("client_name"),
        client.npi.label("client_npi"),
        claim.patient_name.label("insuree_name"),
        claim.patient_id.label("insuree_id"),
        account_ids.label("all_account_ids"),
        names.label("all_account_names"),
    ).select_from(
        source.join(wf, sa.and_(wf.organization_id == org, wf.id == base.c.workflow_id))
        .outerjoin(client, sa.and_(client.organization_id == org, client.id == base.c.client_id))
        .outerjoin(
            claim, sa.and_(claim.organization_id == org, claim.id == base.c.claim_submission_id)
        )
        .outerjoin(progress, on_progress)
    )
    if newest_first:
        stmt = stmt.order_by(base.c.created_at.desc(), base.c.job_id.desc())
    return stmt


class ViewQuery(NamedTuple):
    """A view statement and, for PostgreSQL, its driver SQL compiled once.

    :meth:`rows` sends the driver SQL through ``exec_driver_sql`` on the unit's own
    connection (inside its transaction) with the values in ``names`` order; elsewhere
    it executes ``statement`` as usual.
    """

    statement: sa.Select[Any]
    driver_sql: str | None
    names: tuple[str, ...]

    @classmethod
    def of(cls, statement: sa.Select[Any], dialect: str) -> ViewQuery:
        """``statement``, compiled now if ``dialect`` is PostgreSQL (asyncpg)."""
        if dialect != "postgresql":
            return cls(statement, None, ())
        done = statement.compile(dialect=pg_asyncpg.dialect())  # type: ignore[no-untyped-call]
        return cls(statement, str(done), tuple(done.positiontup or ()))

    async def rows(
        self, executor: AsyncSession | AsyncConnection, params: Mapping[str, Any]
    ) -> Sequence[sa.RowMapping]:
        """The result rows for ``params`` (every name the statement binds)."""
        if self.driver_sql is None:
            result = await executor.execute(self.statement, params)
        else:
            connection = (
                await executor.connection() if isinstance(executor, AsyncSession) else executor
            )
            values = tuple(params[name] for name in self.names)
            result = await connection.exec_driver_sql(self.driver_sql, values)
        rows: Sequence[sa.RowMapping] = result.mappings().all()
        return rows


@functools.lru_cache(maxsize=4)
def get_query(dialect: str) -> ViewQuery:
    """:func:`get_statement` as a :class:`ViewQuery`."""
    return ViewQuery.of(get_statement(dialect), dialect)


@functools.lru_cache(maxsize=4)
def get_statement(dialect: str) -> sa.Select[Any]:
    """The view of one job of one organization (parameters ``organization_id``, ``job_id``)."""
    organization = sa.bindparam("organization_id", type_=_em_table.c.organization_id.type)
    one = (
        sa.select(*[_em_table.c[name] for name in row_columns])
        .where(
            _em_table.c.organization_id == organization,
            _em_table.c.job_id == sa.bindparam("job_id", type_=_em_table.c.job_id.type),
        )
        .subquery("one")
    )
    return view_select(one, dialect, organization=organization)


@functools.lru_cache(maxsize=4)
def views_of_jobs_statement(dialect: str) -> sa.Select[Any]:
    """The views of the jobs in ``job_ids`` (any organization: an operator's check)."""
    some = (
        sa.select(*[_em_table.c[name] for name in row_columns])
        .where(_em_table.c.job_id.in_(sa.bindparam("job_ids", expanding=True)))
        .subquery("checked")
    )
    return view_select(some, dialect)


Row = Mapping[str, Any] | sa.RowMapping
AccountNames = dict[uuid.UUID, str | None]


def to_view(row: Row) -> ExecutionView:
    """The public view of one result row of :func:`view_select`."""
    return _view(row, {})


def to_views(rows: Iterable[Row]) -> list[ExecutionView]:
    """The views of result rows (a page's shared map of account names decoded once)."""
    decoded: dict[str, AccountNames] = {}
    return [_view(row, decoded) for row in rows]


def _account_map(found: Any) -> AccountNames:
    # Keys are the database's text of the id (dashed on PostgreSQL, hex on SQLite).
    return {uuid.UUID(str(key)): name for key, name in (found or {}).items()}


def _view(row: Row, decoded: dict[str, AccountNames]) -> ExecutionView:
    ids: list[uuid.UUID] = list(row["all_account_ids"] or [])
    found = row["all_account_names"]
    if isinstance(found, str):
        by_id = decoded.get(found)
        if by_id is None:
            by_id = decoded[found] = _account_map(json.loads(found))
    else:
        by_id = _account_map(found)
    names = [by_id.get(account) for account in ids]
    primary = row["primary_account_id"]
    total, done = int(row["total_steps"]), int(row["completed_steps"])
    started, completed = row["started_at"], row["completed_at"]
    return ExecutionView(
        job_id=row["job_id"],
        organization_id=row["organization_id"],
        workflow_id=row["workflow_id"],
        workflow_name=row["workflow_name"],
        client_id=row["client_id"],
        client_name=row["client_name"],
        client_npi=row["client_npi"],
        claim_submission_id=row["claim_submission_id"],
        insuree_name=row["insuree_name"],
        insuree_id=row["insuree_id"],
        status=ExecutionStatus(row["status"]),
        progress_percent=progress_percent(done, total),
        total_steps=total,
        completed_steps=done,
        created_at=as_utc(row["created_at"]),
        started_at=None if started is None else as_utc(started),
        completed_at=None if completed is None else as_utc(completed),
        duration_ms=row["duration_ms"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        primary_account_id=primary,
        primary_account_name=None if primary is None else by_id.get(primary),
        all_account_ids=ids,
        all_account_names=names,
        account_count=len(ids),
    )
