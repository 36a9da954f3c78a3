"""What the operator jobs record about themselves: one row per finished backfill.

``backfill_completions`` (created by ``normalize_rag_rules``, where the backfills start)
holds a row per backfill (``results``, ``metadata``, ``rag``, ``logs``, ``audit``) that
finished and verified; ``details`` says what it verified (``legacy_rows``: the rows its
legacy table held then). Every contract revision checks it before dropping a legacy
table (:func:`execstore.migrations.helpers.require_backfill_complete`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from execstore.schema.base import Base

__all__ = ["BackfillCompletion"]


class BackfillCompletion(Base):
    """A backfill that moved every row and verified the result."""

    __tablename__ = "backfill_completions"
    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    completed_at: Mapped[dt.datetime] = mapped_column()
    verified_at: Mapped[dt.datetime] = mapped_column()
    details: Mapped[dict[str, Any]]
