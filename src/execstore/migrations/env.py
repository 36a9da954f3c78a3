"""Alembic environment: runs on the connection execstore.migrate hands over."""

from __future__ import annotations

from typing import Any

from alembic import context

from execstore.clock import SYSTEM_CLOCK
from execstore.migrations.runner import include_name
from execstore.schema.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable with a hand-written alembic.ini
    raise RuntimeError("run migrations through execstore.migrate() or `execstore db`")
# Revisions take the date from here, never from the wall clock themselves (the runner
# passes its clock's reading; any other caller gets the wall clock's).
config.attributes.setdefault("now", SYSTEM_CLOCK.now())


def _configure(**extra: Any) -> None:
    assert connection is not None
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_name=include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # DDL is transactional on both backends: execstore's SQLite connections run it
        # inside the transaction SQLAlchemy begins (execstore.db). Alembic would
        # otherwise commit after every SQLite step, even for a one-transaction downgrade.
        transactional_ddl=True,
        transaction_per_migration=config.attributes.get("transaction_per_migration", True),
        on_version_apply=config.attributes.get("on_version_apply"),
        **extra,
    )


_configure()
with context.begin_transaction():
    context.run_migrations()
