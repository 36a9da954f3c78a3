"""The one query that turns slim rows into dashboard views: names joined, in one statement.

``get``, ``list`` and the backfill check all read through :func:`view_select`: the
inner query picks the rows (one job, or one page), the outer query joins the names of
the workflow, client, claim submission (insuree) and primary account, the job's
credential ids and their names, and the step counters of a run still in flight
(``execution_progress``), so a page of 50 executions is one round trip and the joins
run for those 50 rows only, never for the rows a filter skipped.

Accounts come from ``jobs.credential_ids`` (the plan removed the copies from the
metadata row): the names of the job's credentials (``id = ANY(credential_ids)`` on
PostgreSQL, ``json_each`` on SQLite) come back as one ``{id: name}`` object per row and
are laid out in the job's order in Python; a credential deleted since reads as None.
Credentials are matched within the row's organization only.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from execstore.metadata.types import ExecutionView
from execstore.repository import as_utc
from execstore.schema import models as m
from execstore.schema.enums import ExecutionStatus

__all__ = [
    "VIEW_ORDER",
    "get_statement",
    "progress_percent",
    "row_columns",
    "to_view",
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
    # {credential id: name} of the job's credentials in the row's organization, one index
    # scan per row; to_view lays the names out in the job's order (None: deleted since).
    cred = sa.orm.aliased(m.Credential, name="account")
    if dialect == "postgresql":
        pairs: Any = sa.func.json_object_agg(cred.id, cred.name)
        wanted = cred.id == sa.func.any(m.Job.credential_ids)
    else:
        pairs = sa.func.json_group_object(cred.id, cred.name)
        ids = sa.func.json_each(m.Job.credential_ids).table_valued("value", name="account_ids")
        wanted = cred.id.in_(sa.select(ids.c.value).scalar_subquery())
    return (
        sa.select(sa.type_coerce(pairs, sa.JSON()))
        .where(cred.organization_id == rows.c.organization_id, wanted)
        .scalar_subquery()
    )


def view_select(rows: sa.Subquery, dialect: str) -> sa.Select[Any]:
    """The views of the slim rows ``rows`` selects (any subquery of ``row_columns``)."""
    wf = sa.orm.aliased(m.Workflow, name="wf")
    client = sa.orm.aliased(m.Client, name="client")
    claim = sa.orm.aliased(m.ClaimSubmission, name="claim")
    primary = sa.orm.aliased(m.Credential, name="primary_account")
    progress = sa.orm.aliased(m.ExecutionProgress, name="progress")
    org = rows.c.organization_id
    live = {
        "completed_steps": sa.func.coalesce(progress.completed_steps, rows.c.completed_steps),
        "total_steps": sa.func.coalesce(progress.total_steps, rows.c.total_steps),
    }
    return sa.select(
        *[live[name].label(name) if name in live else rows.c[name] for name in row_columns],
        wf.name.label("workflow_name"),
        client.name.label("client_name"),
        client.npi.label("client_npi"),
        claim.patient_name.label("insuree_name"),
        claim.patient_id.label("insuree_id"),
        primary.name.label("primary_account_name"),
        m.Job.credential_ids.label("all_account_ids"),
        _account_names(rows, dialect).label("all_account_names"),
    ).select_from(
        rows.join(m.Job, m.Job.id == rows.c.job_id)
        .join(wf, sa.and_(wf.organization_id == org, wf.id == rows.c.workflow_id))
        .outerjoin(client, sa.and_(client.organization_id == org, client.id == rows.c.client_id))
        .outerjoin(
            claim, sa.and_(claim.organization_id == org, claim.id == rows.c.claim_submission_id)
        )
        .outerjoin(
            primary,
            sa.and_(primary.organization_id == org, primary.id == rows.c.primary_account_id),
        )
        .outerjoin(progress, progress.job_id == rows.c.job_id)
    )


@functools.lru_cache(maxsize=4)
def get_statement(dialect: str) -> sa.Select[Any]:
    """The view of one job of one organization (parameters ``organization_id``, ``job_id``)."""
    one = (
        sa.select(*[_em_table.c[name] for name in row_columns])
        .where(
            _em_table.c.organization_id == sa.bindparam("organization_id"),
            _em_table.c.job_id == sa.bindparam("job_id"),
        )
        .subquery("one")
    )
    return view_select(one, dialect)


@functools.lru_cache(maxsize=4)
def views_of_jobs_statement(dialect: str) -> sa.Select[Any]:
    """The views of the jobs in ``job_ids`` (any organization: an operator's check)."""
    some = (
        sa.select(*[_em_table.c[name] for name in row_columns])
        .where(_em_table.c.job_id.in_(sa.bindparam("job_ids", expanding=True)))
        .subquery("checked")
    )
    return view_select(some, dialect)


def to_view(row: Mapping[str, Any]) -> ExecutionView:
    """The public view of one result row of :func:`view_select`."""
    ids: list[uuid.UUID] = list(row["all_account_ids"] or [])
    found = row["all_account_names"]
    if isinstance(found, str):
        found = json.loads(found)
    by_id = {str(key).lower(): name for key, name in (found or {}).items()}
    names = [by_id.get(str(account)) for account in ids]
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
        primary_account_id=row["primary_account_id"],
        primary_account_name=row["primary_account_name"],
        all_account_ids=ids,
        all_account_names=names,
        account_count=len(ids),
    )
