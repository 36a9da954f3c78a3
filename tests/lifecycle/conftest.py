"""A migrated template database the lifecycle examples copy (one fresh database each)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from support.postgres import PgServer

from .harness import template_database


@pytest.fixture(scope="session")
def lifecycle_template(pg_server: PgServer) -> Iterator[str]:
    """The name of a migrated database that every example copies (``CREATE ... TEMPLATE``)."""
    with template_database(pg_server) as name:
        yield name


__all__ = ["asyncio", "lifecycle_template"]
