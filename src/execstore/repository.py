"""What every repository shares: a session it never commits, one organization, hooks.

A repository is declared as a small subclass naming its model (``model_type = Job``).
It takes the session keyword-only and never commits: the caller, or the facade's unit
of work, owns the transaction. Rows of another organization are "not found", and every
write that names another row checks, in the same statement, that the row belongs to
the unit's organization (:meth:`ScopedRepository._insert_owned`).

Every timestamp a repository writes and every decision it makes by date reads its
``clock`` (:mod:`execstore.clock`), never the wall clock.

Blob side effects follow the transaction through :class:`TransactionHooks`: work to do
after a commit (delete a blob the rows no longer point at) or after a rollback (delete
a blob this transaction uploaded).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import NotFound, translate_database_errors
from execstore.schema.base import Base

__all__ = [
    "PublicModel",
    "ScopedRepository",
    "TransactionHooks",
    "UtcDateTime",
    "as_utc",
    "owned_ids",
]

log = logging.getLogger("execstore")

ModelT = TypeVar("ModelT", bound=Base)
RowT = TypeVar("RowT", bound=Base)
Hook = Callable[[], Awaitable[Any]]


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC; a naive value (SQLite gives those back) is taken as UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


UtcDateTime = Annotated[dt.datetime, AfterValidator(as_utc)]
"""A timestamp in a public type: always timezone-aware, in UTC, on every backend."""


class PublicModel(BaseModel):
    """Base of the pydantic types repositories return (validated from ORM rows)."""

    model_config = ConfigDict(from_attributes=True, frozen=True)


class TransactionHooks:
    """Work to run after the surrounding transaction commits, or after it does not."""

    def __init__(self) -> None:
        self._on_commit: list[Hook] = []
        self._on_rollback: list[Hook] = []

    def on_commit(self, then: Hook) -> None:
        """Run ``then`` after the transaction commits (best effort, e.g. blob deletes)."""
        self._on_commit.append(then)

    def on_rollback(self, undo: Hook) -> None:
        """Run ``undo`` if the transaction does not commit (best effort)."""
        self._on_rollback.append(undo)

    async def committed(self) -> None:
        """Run the commit hooks in order; failures are logged (the reconciler repairs them)."""
        await _run_all(self._on_commit, "post-commit clean-up failed")

    async def rolled_back(self) -> None:
        """Run the rollback hooks, newest first; failures are logged."""
        await _run_all(list(reversed(self._on_rollback)), "rollback clean-up failed")


async def _run_all(hooks: list[Hook], message: str) -> None:
    for hook in hooks:
        try:
            await hook()
        except Exception:  # the reconciler repairs what this misses
            log.warning(message, exc_info=True)


def owned_ids(
    model: type[Base], ids: Iterable[uuid.UUID], organization_id: uuid.UUID
) -> sa.ColumnElement[bool]:
    """SQL that is true when every one of ``ids`` is a ``model`` row of ``organization_id``."""
    wanted = set(ids)
    if not wanted:
        return sa.true()
    found = (
        sa.select(sa.func.count())
        .select_from(model)
        .where(model.id.in_(wanted), model.organization_id == organization_id)  # type: ignore[attr-defined]
        .scalar_subquery()
    )
    return found == len(wanted)


class ScopedRepository(Generic[ModelT]):
    """Reads and writes ``model_type`` rows of one organization through a caller's session."""

    model_type: ClassVar[type[Base]]
    scope_column: ClassVar[str] = "organization_id"

    def __init__(
        self,
        *,
        session: AsyncSession,
        organization_id: uuid.UUID,
        hooks: TransactionHooks | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.session = session
        self.organization_id = organization_id
        self.hooks = hooks
        self.clock = clock
        """What time it is for this repository's decisions and the timestamps it writes."""

    def _scoped(self, stmt: Any) -> Any:
        return stmt.where(getattr(self.model_type, self.scope_column) == self.organization_id)

    async def _get_row(self, row_id: uuid.UUID) -> ModelT:
        with translate_database_errors():
            row = (
                await self.session.execute(
                    self._scoped(sa.select(self.model_type).where(self.model_type.id == row_id))  # type: ignore[attr-defined]
                )
            ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"{self.model_type.__tablename__} {row_id} not found")
        return row  # type: ignore[no-any-return]

    async def _add(self, row: RowT) -> RowT:
        with translate_database_errors():
            self.session.add(row)
            await self.session.flush()
        return row

    async def _insert_owned(
        self,
        model: type[RowT],
        values: Mapping[str, Any],
        *,
        owned: Mapping[str, type[Base]],
    ) -> None:
        """Insert one ``model`` row whose references all belong to this organization.

        ``owned`` maps a column of ``values`` (a uuid, a list of uuids, or None) to the
        model it names. The check and the insert are one ``INSERT ... SELECT ... WHERE``
        statement, so no concurrent change can slip between them; if any reference is
        not this organization's, nothing is written and NotFound names it.
        """
        table: sa.Table = model.__table__  # type: ignore[assignment]
        checks = [
            owned_ids(ref, _as_ids(values.get(col)), self.organization_id)
            for col, ref in owned.items()
        ]
        columns = list(values)
        select = sa.select(
            *[sa.literal(values[c], type_=table.c[c].type).label(c) for c in columns]
        ).where(*checks)
        with translate_database_errors():
            inserted = await self.session.execute(
                sa.insert(table).from_select(columns, select).returning(sa.literal(1))
            )
            if inserted.first() is not None:
                return
            for col, ref in owned.items():
                ids = _as_ids(values.get(col))
                if ids and not await self.session.scalar(
                    sa.select(owned_ids(ref, ids, self.organization_id))
                ):
                    name = ref.__tablename__
                    raise NotFound(f"{name} {', '.join(map(str, ids))} not found ({col})")
        raise NotFound(f"a row named by {model.__tablename__} was not found")


def _as_ids(value: Any) -> list[uuid.UUID]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return [v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)) for v in value]
    return [value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))]
