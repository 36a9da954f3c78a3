"""Revisions stand on their own (issue 18.5): what they import, and the frozen copies they
carry of what the running code also knows.

A revision (and ``migrations/helpers.py``) imports only Alembic, SQLAlchemy, the standard
library, ``execstore.errors`` and ``execstore.migrations.helpers``: never the models, a
capability or any other execstore module, so it does in a year what it did when
written. Where a revision keeps its own copy of something the running code also has
(the legacy-id mapping, the truncation marker, the metadata check's fingerprint, the
expression the legacy indexes are built on, the partition names), a test here holds the
two together: the running code may not drift from the data the revisions wrote.
"""

from __future__ import annotations

import ast
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import execstore.migrations as migrations_package
from execstore.migrations import helpers

MIGRATIONS = Path(migrations_package.__file__).parent
FROZEN = [*sorted((MIGRATIONS / "versions").glob("r*.py")), MIGRATIONS / "helpers.py"]
ALLOWED_EXECSTORE = {"execstore.errors", "execstore.migrations.helpers"}
ALLOWED_THIRD_PARTY = {"alembic", "sqlalchemy"}


def forbidden_imports(source: str, module: str) -> list[str]:
    """The imports in ``source`` (the module ``module``) that a revision may not make."""
    found = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the module's package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            # ``from execstore import schema`` imports execstore.schema
            names = [base] if base not in {"execstore", ""} else []
            if base == "execstore":
                names = [f"execstore.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in {"import_module", "__import__"}
        ):
            found.append(f"dynamic import at line {node.lineno}")
            continue
        for name in names:
            top = name.split(".")[0]
            if name == "__future__" or top in sys.stdlib_module_names:
                continue
            if top in ALLOWED_THIRD_PARTY or name in ALLOWED_EXECSTORE:
                continue
            found.append(name)
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(MIGRATIONS.parent.parent).with_suffix("").parts
    return ".".join(parts)


@pytest.mark.parametrize("path", FROZEN, ids=lambda p: p.name)
def test_revisions_and_helpers_import_nothing_that_moves(path: Path) -> None:
    assert forbidden_imports(path.read_text(), _module_name(path)) == []


def test_every_revision_is_checked() -> None:
    from support.migration_db import REVISIONS, revision_module

    checked = {p.resolve() for p in FROZEN}
    assert len(REVISIONS) == len(FROZEN) - 1
    for revision in REVISIONS:
        assert Path(revision_module(revision).__file__).resolve() in checked


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("from execstore.schema.models import Base", ["execstore.schema.models"]),
        ("import execstore.schema.legacy", ["execstore.schema.legacy"]),
        ("from execstore import schema, errors", ["execstore.schema"]),
        ("from execstore.textlimits import TRUNCATION_MARKER", ["execstore.textlimits"]),
        ("from execstore.ids import legacy_uuid", ["execstore.ids"]),
        ("from execstore.rag.refill import refill_legacy", ["execstore.rag.refill"]),
        ("from ..runner import migrate", ["execstore.migrations.runner"]),
        ("from . import r0000_legacy_baseline", ["execstore.migrations.versions"]),
        ("def f():\n    from execstore.metadata import check", ["execstore.metadata"]),
        ("import pydantic", ["pydantic"]),
        ("import importlib\nimportlib.import_module('execstore.schema')", ["dynamic import"]),
        ("import json, uuid, zlib\nimport sqlalchemy as sa\nfrom alembic import op", []),
        ("from sqlalchemy.dialects import postgresql", []),
        ("from execstore.errors import DowngradeRefused", []),
        ("from execstore.migrations.helpers import create_table", []),
    ],
)
def test_the_rule_catches_a_forbidden_import(source: str, caught: list[str]) -> None:
    found = forbidden_imports(textwrap.dedent(source), "execstore.migrations.versions.r9999_x")
    assert [f.split(" at line")[0] for f in found] == caught


# -- frozen copies, held to the running code ----------------------------------------------

LEGACY_IDS = [
    "cljobx9p2000008l4c3h2fq7k",  # a cuid
    str(uuid.UUID(int=7)).upper(),
    "{" + str(uuid.UUID(int=8)) + "}",
    uuid.UUID(int=9).hex,
    str(uuid.UUID(int=10)),
    "{" + uuid.UUID(int=11).hex + "}",
    "{not-a-uuid}",
    "0000000a-0000-0000-0000-00000000000",  # one digit short
    "",
    "é-ünïcode",
]


def test_the_frozen_legacy_id_mapping_is_the_running_one() -> None:
    from execstore.ids import LEGACY_UUID_PATTERN, legacy_uuid, legacy_uuid_text

    assert helpers.LEGACY_UUID_PATTERN == LEGACY_UUID_PATTERN
    for text in LEGACY_IDS:
        assert helpers.legacy_uuid_text(text) == str(legacy_uuid(text)) == legacy_uuid_text(text)
    assert helpers.legacy_uuid_text(None) is None


def test_the_legacy_indexes_are_built_on_the_expression_the_reads_use() -> None:
    """The planner uses an expression index only for that very expression."""
    from execstore.schema import rag, results
    from support.migration_db import revision_module

    assert helpers.legacy_uuid_pg("job_id") == results.LEGACY_JOB_UUID_SQL
    assert f"({helpers.legacy_uuid_pg('job_id')})" == rag.legacy_job_uuid_sql()
    archival = revision_module("add_archival_tables")
    assert archival.LEGACY_JOB_UUID_INDEX == results.LEGACY_JOB_UUID_INDEX
    for revision in ("normalize_rag_rules", "contract_rag_rules"):
        assert revision_module(revision).LEGACY_JOB_UUID_INDEX == rag.LEGACY_JOB_UUID_INDEX


def test_the_frozen_marker_and_names_are_the_running_ones() -> None:
    import datetime as dt

    from execstore.operations import BACKFILLS
    from execstore.schema import base, metadata, partitions
    from execstore.textlimits import TRUNCATION_MARKER
    from support.migration_db import revision_module

    assert helpers.TRUNCATION_MARKER == TRUNCATION_MARKER
    assert dict(helpers.NAMING_CONVENTION) == base.NAMING_CONVENTION
    contracts = ("contract_execution_metadata", "contract_rag_rules")
    contracts += ("contract_execution_log", "contract_phi_audit")
    required = [revision_module(revision).BACKFILL for revision in contracts]
    assert required == ["metadata", "rag", "logs", "audit"]
    assert set(required) <= set(BACKFILLS)
    slim = revision_module("slim_execution_metadata")
    assert slim.LISTING_INDEX == metadata.LISTING_INDEX
    assert slim.SUMMARY_TRIGGERS == metadata.SUMMARY_TRIGGERS_DDL
    logs = revision_module("partition_execution_logs")
    assert logs.LOG_TABLE == partitions.LOG_TABLE
    month = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert f"{logs.LOG_TABLE}_p{month:%Y_%m}" == partitions.partition_name(month)
