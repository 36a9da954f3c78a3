"""Dashboard listings: filters and the keyset query behind ``uow.metadata.list``.

A listing walks ``(organization_id, created_at)`` newest first (on PostgreSQL the index
leads with ``uuid_hash(organization_id)``, which the statement names as well), with the
job id breaking ties, and stops after one page:
``ORDER BY created_at DESC, job_id DESC LIMIT n + 1``. The next page starts strictly after
the last row shown, so a page never repeats or skips a row however many executions are
created or updated meanwhile (``created_at`` and ``job_id`` never change). There is no
``COUNT(*)``: totals come from the summaries.

The cursor (:mod:`execstore.pages`, kind ``executions``) holds the last row's creation
time and job id. It names a position only, so it stays valid under any filter.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from execstore.errors import InvalidArgument
from execstore.metadata.views import ViewQuery, row_columns, view_select
from execstore.pages import decode_cursor, encode_cursor
from execstore.repository import as_utc
from execstore.schema import models as m
from execstore.schema.enums import ExecutionStatus
from execstore.schema.metadata import on_listing_key
from execstore.textlimits import fit_text, limit_of

__all__ = [
    "ListFilter",
    "list_cursor",
    "list_params",
    "list_position",
    "list_query",
]

_CURSOR_KIND: Final = "executions"
_em = m.ExecutionMetadata


@dataclass(frozen=True, slots=True)
class ListFilter:
    """What a listing keeps (every given condition must hold)."""

    statuses: frozenset[ExecutionStatus] | None = None
    workflow_id: uuid.UUID | None = None
    client_id: uuid.UUID | None = None
    error_code: str | None = None
    created_from: dt.datetime | None = None
    """Inclusive."""
    created_to: dt.datetime | None = None
    """Exclusive."""

    @classmethod
    def of(
        cls,
        *,
        statuses: Collection[ExecutionStatus | int] | None = None,
        workflow_id: uuid.UUID | None = None,
        client_id: uuid.UUID | None = None,
        error_code: str | None = None,
        created_from: dt.datetime | None = None,
        created_to: dt.datetime | None = None,
    ) -> ListFilter:
        """A validated filter (InvalidArgument for an unknown status or a naive time)."""
        wanted = None
        if statuses is not None:
            try:
                wanted = frozenset(ExecutionStatus(s) for s in statuses)
            except ValueError as exc:
                raise InvalidArgument(f"statuses: {exc}") from exc
        for name, value in (("created_from", created_from), ("created_to", created_to)):
            if value is not None and value.tzinfo is None:
                raise InvalidArgument(f"{name} must be timezone-aware")
        return cls(
            statuses=wanted,
            workflow_id=workflow_id,
            client_id=client_id,
            # Fitted as a stored code is (NULs out, cut to the column): the same text matches.
            error_code=fit_text(error_code, limit_of(_em.error_code)),
            created_from=None if created_from is None else as_utc(created_from),
            created_to=None if created_to is None else as_utc(created_to),
        )


def list_cursor(created_at: dt.datetime, job_id: uuid.UUID) -> str:
    """The cursor of the position just after (older than) this row."""
    return encode_cursor(_CURSOR_KIND, (as_utc(created_at), job_id))


def list_position(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    """The (created_at, job_id) a cursor names; InvalidCursor if it is not a listing's."""
    created_at, job_id = decode_cursor(_CURSOR_KIND, cursor, (dt.datetime, uuid.UUID))
    return created_at, job_id


def list_params(
    organization_id: uuid.UUID,
    filters: ListFilter,
    after: tuple[dt.datetime, uuid.UUID] | None,
) -> dict[str, Any]:
    """The parameters of :func:`list_query` for one request."""
    params: dict[str, Any] = {"organization_id": organization_id}
    if filters.statuses is not None:
        params["statuses"] = sorted(int(s) for s in filters.statuses)
    for name in ("workflow_id", "client_id", "error_code", "created_from", "created_to"):
        value = getattr(filters, name)
        if value is not None:
            params[name] = value
    if after is not None:
        params["after_created_at"], params["after_job_id"] = after
    return params


def list_query(dialect: str, filters: ListFilter, *, after: bool, limit: int) -> ViewQuery:
    """The listing query for this combination of filters (built and compiled once).

    Values travel as parameters (:func:`list_params`); the statement depends only on
    which filters are present, whether a cursor is, and the page size, so it is
    compiled once and PostgreSQL keeps one generic plan for it (see below).
    """
    shape = tuple(
        getattr(filters, name) is not None
        for name in (
            "statuses",
            "workflow_id",
            "client_id",
            "error_code",
            "created_from",
            "created_to",
        )
    )
    return _list_query(dialect, shape, after, limit)


@functools.lru_cache(maxsize=512)
def _list_query(dialect: str, shape: tuple[bool, ...], after: bool, limit: int) -> ViewQuery:
    em: sa.Table = _em.__table__  # type: ignore[assignment]
    has_statuses, has_workflow, has_client, has_error, has_from, has_to = shape
    on_postgres = dialect == "postgresql"

    def value(name: str, type_: Any) -> Any:
        # On PostgreSQL every value reaches the plan as the result of a subquery, never
        # as a constant it could price: a custom plan then costs what the generic plan
        # does, and after five runs PostgreSQL keeps the generic one. Given the values,
        # it re-planned these joins (~1.3 ms, longer than running them) on every page
        # whenever its first runs were of large organizations.
        bound = sa.bindparam(name, type_=type_)
        return sa.select(bound).scalar_subquery() if on_postgres else bound

    org = value("organization_id", em.c.organization_id.type)
    where: list[sa.ColumnElement[bool]] = [em.c.organization_id == org]
    if on_postgres:
        # What the listing index is keyed on (execstore.schema.metadata.LISTING_INDEX).
        where.insert(0, on_listing_key(em.c.organization_id, org))
    if has_statuses and on_postgres:
        # One array value: one statement (and one plan) for every set of statuses. (The
        # cast keeps ANY from reading the subquery as a set of rows.)
        array = postgresql.ARRAY(em.c.status.type)
        where.append(em.c.status == sa.func.any(sa.cast(value("statuses", array), array)))
    elif has_statuses:
        where.append(em.c.status.in_(sa.bindparam("statuses", expanding=True)))
    if has_workflow:
        where.append(em.c.workflow_id == value("workflow_id", em.c.workflow_id.type))
    if has_client:
        where.append(em.c.client_id == value("client_id", em.c.client_id.type))
    if has_error:
        where.append(em.c.error_code == value("error_code", em.c.error_code.type))
    if has_from:
        where.append(em.c.created_at >= value("created_from", em.c.created_at.type))
    if has_to:
        where.append(em.c.created_at < value("created_to", em.c.created_at.type))
    if after:
        at = value("after_created_at", em.c.created_at.type)
        job = value("after_job_id", em.c.job_id.type)
        # The first condition is what the index can seek to; the second breaks ties.
        where.append(em.c.created_at <= at)
        where.append(sa.or_(em.c.created_at < at, em.c.job_id < job))
    rows = (
        sa.select(*[em.c[name] for name in row_columns])
        .where(*where)
        .order_by(em.c.created_at.desc(), em.c.job_id.desc())
        # A literal LIMIT: with a parameter there, PostgreSQL's generic plan cannot tell
        # a page from a scan and it would plan (~1-2 ms) on every execution instead.
        .limit(sa.literal_column(str(int(limit) + 1)))
        .subquery("page")
    )
    return ViewQuery.of(view_select(rows, dialect, organization=org, newest_first=True), dialect)
