"""What every repository shares: a session it never commits, and an organization scope.

A repository is declared as a small subclass naming its model (``model_type = Job``).
It takes the session keyword-only and never commits: the caller, or the facade's unit
of work, owns the transaction. Rows of another organization are "not found".
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.errors import NotFound, translate_database_errors
from execstore.schema.models import Base

__all__ = ["PublicModel", "ScopedRepository"]

ModelT = TypeVar("ModelT", bound=Base)
RowT = TypeVar("RowT", bound=Base)


class PublicModel(BaseModel):
    """Base of the pydantic types repositories return (validated from ORM rows)."""

    model_config = ConfigDict(from_attributes=True, frozen=True)


class ScopedRepository(Generic[ModelT]):
    """Reads and writes ``model_type`` rows of one organization through a caller's session."""

    model_type: ClassVar[type[Base]]
    scope_column: ClassVar[str] = "organization_id"

    def __init__(self, *, session: AsyncSession, organization_id: uuid.UUID) -> None:
        self.session = session
        self.organization_id = organization_id

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
