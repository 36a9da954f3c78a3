"""Archive pointer rows, one shape for every capability (results, logs, audit).

Every pointer table is built on :class:`execstore.schema.base.ArchivePointer` (same
columns, same types, one ``lost`` mark, one codec enum), so one function reads any row
as an :class:`~execstore.blob.ArchiveRef` (:func:`archive_ref`), one writes a ref's
values (:func:`pointer_values`), and one reconciler kind checks any table
(:class:`PointerTable`); a capability's kind only adds what is its own (which blobs an
unfinished job will still claim; for results, the key derived from the job).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.archival.reconcile import ArchiveTotals, Pointer
from execstore.blob import ArchiveRef
from execstore.config import Codec
from execstore.errors import translate_database_errors

__all__ = ["PointerTable", "archive_ref", "pointer_values"]


def archive_ref(row: Any, *, key: str | None = None) -> ArchiveRef:
    """The ArchiveRef a pointer row records.

    ``row`` is a model object or a row read by column name (a SQLAlchemy row mapping, an
    asyncpg record). ``key`` is the derived key of a row that stores none (a result
    document: one record).
    """
    get = row.__getitem__ if hasattr(row, "keys") else functools.partial(getattr, row)
    return ArchiveRef(
        key=get("blob_key") if key is None else key,
        codec=Codec.of(get("codec")),
        sha256=bytes(get("sha256")),
        raw_size=int(get("raw_size")),
        stored_size=int(get("stored_size")),
        record_count=int(get("record_count")) if key is None else 1,
        format_version=int(get("format_version")),
    )


def pointer_values(
    ref: ArchiveRef, *, archived_at: dt.datetime, keyed: bool = True
) -> dict[str, Any]:
    """Insert values of the pointer row for ``ref`` (not lost), archived at ``archived_at``.

    ``keyed``: the table stores the key and record count (all but ``job_result_archives``).
    """
    values: dict[str, Any] = {
        "archived_at": archived_at,
        "raw_size": ref.raw_size,
        "stored_size": ref.stored_size,
        "codec": ref.codec,
        "format_version": ref.format_version,
        "lost": False,
        "sha256": ref.sha256,
    }
    if keyed:
        values |= {"record_count": ref.record_count, "blob_key": ref.key}
    return values


class PointerTable:
    """A pointer table as an :class:`~execstore.archival.ArchiveKind`: the one reconciler kind.

    Listing rows in primary-key order, finding which keys they point at, setting and
    clearing ``lost`` and totalling what they hold are the same for every table;
    :meth:`pending` (none by default) is the capability's own. A table that derives its
    keys (results) also says how: :meth:`ref_of`, :meth:`_source`, :meth:`_naming` and
    :attr:`_records`.
    """

    name: str
    """Shown in reports; the key prefix too (``logs`` -> ``logs/``)."""
    model: Any
    """The pointer model (an :class:`~execstore.schema.base.ArchivePointer` table)."""

    @property
    def prefix(self) -> str:
        """Every blob of this kind has a key under it."""
        return f"{self.name}/"

    def organization_prefix(self, organization_id: uuid.UUID) -> str:
        """``<name>/<org>/``: one organization's blobs of this kind."""
        return f"{self.prefix}{organization_id}/"

    @property
    def _id(self) -> Any:
        return sa.inspect(self.model).primary_key[0]

    @property
    def _organization(self) -> Any:
        return self.model.organization_id

    @property
    def _records(self) -> Any:
        return self.model.record_count

    def _source(self) -> sa.Select[*tuple[Any, ...]]:
        """The rows, with whatever :meth:`ref_of` needs besides the pointer."""
        return sa.select(self.model)

    def _naming(self, keys: Sequence[str]) -> Any:
        """A condition on :meth:`_source` that holds for the rows of ``keys`` (None: no row)."""
        return self.model.blob_key.in_(list(keys))

    def ref_of(self, row: Any) -> ArchiveRef:
        """The ArchiveRef of a :meth:`_source` row."""
        return archive_ref(row[0])

    async def pointers(
        self,
        session: AsyncSession,
        *,
        after: Any,
        limit: int,
        organization_id: uuid.UUID | None,
    ) -> tuple[list[Pointer], Any]:
        """Up to ``limit`` pointer rows after the primary key ``after``, in key order."""
        stmt = self._source().order_by(self._id).limit(limit)
        if after is not None:
            stmt = stmt.where(self._id > after)
        if organization_id is not None:
            stmt = stmt.where(self._organization == organization_id)
        with translate_database_errors():
            rows = (await session.execute(stmt)).all()
        key = self._id.key
        found = [Pointer(self.ref_of(r), r[0].lost, getattr(r[0], key)) for r in rows]
        return found, (found[-1].row if found else after)

    async def referenced(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` that a pointer row points at."""
        naming = self._naming(keys) if keys else None
        if naming is None:
            return set()
        with translate_database_errors():
            rows = (await session.execute(self._source().where(naming))).all()
        return {self.ref_of(row).key for row in rows} & set(keys)

    async def pending(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` (none referenced) that an unfinished job will still claim."""
        return set()

    async def mark(self, session: AsyncSession, pointer: Pointer, *, lost: bool) -> None:
        """Set (``lost``) or clear the row's ``lost`` mark."""
        with translate_database_errors():
            await session.execute(
                sa.update(self.model).where(self._id == pointer.row).values(lost=lost)
            )

    async def totals(
        self, session: AsyncSession, *, organization_id: uuid.UUID | None = None
    ) -> ArchiveTotals:
        """What the pointer rows say this kind holds (no blob I/O)."""
        stmt = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(self._records), 0),
            sa.func.coalesce(sa.func.sum(self.model.stored_size), 0),
            sa.func.coalesce(sa.func.sum(self.model.raw_size), 0),
        ).select_from(*self._source().get_final_froms())
        if organization_id is not None:
            stmt = stmt.where(self._organization == organization_id)
        with translate_database_errors():
            count, records, stored, raw = (await session.execute(stmt)).one()
        return ArchiveTotals(int(count), int(records), int(stored), int(raw))
