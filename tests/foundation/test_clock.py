"""The one clock: ManualClock's contract, and no other read of the wall clock in execstore.

The scan walks every module of ``src/execstore`` (its syntax tree, so comments and
docstrings may talk about ``now()`` freely) and fails on any read of the wall clock in
Python (``datetime.now``, ``date.today``, ``time.time``, ``func.now``, ...) or in SQL text
(``now()``, ``CURRENT_TIMESTAMP``, ``clock_timestamp()``, SQLite's ``'now'``, ...), except:

- ``execstore/clock.py``: ``SystemClock`` is the one real read;
- ``server_default=...now()`` on a column: DDL only, the fallback for rows other
  programs write (the orchestration service's jobs, the legacy schema of revision 0);
  every insert execstore makes passes the clock's value.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path

import pytest

from execstore.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
from execstore.errors import InvalidArgument

SOURCE = Path(__file__).resolve().parents[2] / "src" / "execstore"
CLOCK_MODULE = "clock.py"
START = dt.datetime(2041, 3, 15, 12, 30, tzinfo=dt.UTC)

# Dotted names whose call (or mere mention) reads the wall clock.
_PYTHON_READS = re.compile(
    r"(^|\.)(datetime|date)\.(now|utcnow|today)$"
    r"|^time\.(time|time_ns|localtime|gmtime|ctime|asctime)$"
    r"|(^|\.)func\.(now|current_timestamp|current_date|current_time|localtimestamp|localtime"
    r"|clock_timestamp|statement_timestamp|transaction_timestamp|sysdate)$"
)
# Names that, imported on their own, read the wall clock when called.
_IMPORTED_READS = {("time", "time"), ("time", "time_ns"), ("time", "localtime")}
# SQL spellings of "now" in PostgreSQL and SQLite.
_SQL_READS = re.compile(
    r"\bnow\s*\(\s*\)|\bcurrent_(timestamp|date|time)\b|\b(clock|statement|transaction)_timestamp\b"
    r"|\blocaltime(stamp)?\b|'now'",
    re.IGNORECASE,
)


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _server_defaults(tree: ast.AST) -> set[int]:
    """Nodes inside a ``server_default=`` argument (DDL, not a statement execstore runs)."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "server_default":
            inside |= {id(child) for child in ast.walk(node.value)}
    return inside


def wall_clock_reads(source: str, name: str = "<source>") -> list[str]:
    """Every read of the wall clock in ``source``, as ``name:line: what``."""
    tree = ast.parse(source)
    skip = _docstrings(tree) | _server_defaults(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        what = None
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted is not None and _PYTHON_READS.search(dotted):
                what = dotted
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names = {(node.module, alias.name) for alias in node.names}
            if names & _IMPORTED_READS:
                what = f"from {node.module} import {', '.join(a.name for a in node.names)}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _SQL_READS.search(node.value)
            if match:
                what = f"SQL {match.group(0)!r}"
        if what is not None:
            found.append(f"{name}:{getattr(node, 'lineno', '?')}: {what}")
    return found


def test_no_module_reads_the_wall_clock_but_the_clock() -> None:
    modules = sorted(SOURCE.rglob("*.py"))
    assert len(modules) > 100  # the scan really sees the package
    found = [
        read
        for path in modules
        if path.name != CLOCK_MODULE or path.parent != SOURCE
        for read in wall_clock_reads(path.read_text(), str(path.relative_to(SOURCE)))
    ]
    assert found == [], "read the injectable clock (execstore.clock) instead:\n" + "\n".join(found)


def test_the_clock_module_is_where_the_wall_clock_is_read() -> None:
    assert wall_clock_reads((SOURCE / CLOCK_MODULE).read_text()) != []


@pytest.mark.parametrize(
    "line",
    [
        "when = dt.datetime.now(dt.UTC)",
        "when = datetime.now()",
        "when = datetime.datetime.utcnow()",
        "day = dt.date.today()",
        "day = date.today()",
        "stamp = time.time()",
        "stamp = time.time_ns()",
        "from time import time",
        "stmt = sa.select(sa.func.now())",
        "stmt = sa.select(func.current_timestamp())",
        "stmt = sa.update(t).values(at=sa.func.clock_timestamp())",
        "sql = 'UPDATE t SET at = now() WHERE id = 1'",
        "sql = 'UPDATE t SET at = NOW ( ) WHERE id = 1'",
        "sql = 'SELECT CURRENT_TIMESTAMP'",
        "sql = 'SELECT current_date - 1'",
        "sql = 'SELECT statement_timestamp(), transaction_timestamp()'",
        "sql = 'SELECT localtimestamp'",
        "sql = \"SELECT datetime('now')\"",
        "sql = f\"SELECT * FROM {table} WHERE at < now() - interval '1 day'\"",
        "column = sa.Column('at', default=sa.func.now())",
        "def f():\n    x = 1\n    return dt.datetime.now(dt.UTC)",
    ],
)
def test_the_scan_finds_a_planted_read(line: str) -> None:
    assert wall_clock_reads(line) != []


@pytest.mark.parametrize(
    "line",
    [
        "column = mapped_column(server_default=sa.func.now())",
        "column = sa.Column('at', TZ, nullable=False, server_default=sa.func.now())",
        'def f():\n    """Never read now() or CURRENT_TIMESTAMP here."""\n    return clock.now()',
        "when = self.clock.now()",
        "when = clock.now() - dt.timedelta(days=30)",
        "started = time.perf_counter()",
        "started = time.monotonic()",
        "now = 1  # now() in a comment",
        "sql = 'SELECT nowhere FROM known'",
    ],
)
def test_the_scan_leaves_clock_reads_and_ddl_defaults_alone(line: str) -> None:
    assert wall_clock_reads(line) == []


# -- the clocks ---------------------------------------------------------------------------


def test_the_system_clock_is_the_wall_clock_in_utc() -> None:
    before = dt.datetime.now(dt.UTC)
    now = SYSTEM_CLOCK.now()
    after = dt.datetime.now(dt.UTC)
    assert before <= now <= after
    assert now.utcoffset() == dt.timedelta(0)
    assert isinstance(SYSTEM_CLOCK, SystemClock)
    assert isinstance(SYSTEM_CLOCK, Clock)
    assert isinstance(ManualClock(START), Clock)


def test_a_manual_clock_stands_still_until_moved() -> None:
    clock = ManualClock(START)
    assert clock.now() == clock.now() == START
    assert clock.advance(days=30) == START + dt.timedelta(days=30) == clock.now()
    assert clock.advance(dt.timedelta(microseconds=1)) == START + dt.timedelta(
        days=30, microseconds=1
    )
    clock.set(START + dt.timedelta(days=400))
    assert clock.now() == START + dt.timedelta(days=400)
    clock.set(clock.now())  # the same instant is not "backwards"
    assert clock.advance(seconds=0) == START + dt.timedelta(days=400)


def test_a_manual_clock_keeps_utc_whatever_zone_it_is_given() -> None:
    eastern = dt.timezone(dt.timedelta(hours=-5))
    clock = ManualClock(dt.datetime(2041, 3, 15, 7, 30, tzinfo=eastern))
    assert clock.now() == START
    assert clock.now().tzinfo is dt.UTC
    clock.set(dt.datetime(2041, 3, 16, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    assert clock.now() == dt.datetime(2041, 3, 15, 23, 0, tzinfo=dt.UTC)
    assert clock.now().tzinfo is dt.UTC


def test_a_manual_clock_refuses_naive_times() -> None:
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        ManualClock(dt.datetime(2041, 3, 15))
    clock = ManualClock(START)
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        clock.set(dt.datetime(2042, 1, 1))
    with pytest.raises(InvalidArgument, match="datetime"):
        ManualClock("2041-03-15T00:00:00Z")  # type: ignore[arg-type]
    assert clock.now() == START


def test_a_manual_clock_never_goes_backwards() -> None:
    clock = ManualClock(START)
    with pytest.raises(InvalidArgument, match="backwards"):
        clock.set(START - dt.timedelta(microseconds=1))
    with pytest.raises(InvalidArgument, match="backwards"):
        clock.advance(dt.timedelta(microseconds=-1))
    with pytest.raises(InvalidArgument, match="backwards"):
        clock.advance(days=-1)
    assert clock.now() == START


def test_advance_takes_a_timedelta_or_keywords() -> None:
    clock = ManualClock(START)
    with pytest.raises(InvalidArgument, match="one of them"):
        clock.advance()
    with pytest.raises(InvalidArgument, match="one of them"):
        clock.advance(dt.timedelta(days=1), days=1)
    with pytest.raises(InvalidArgument, match="advance"):
        clock.advance(fortnights=1)
    with pytest.raises(InvalidArgument, match="9999"):
        clock.advance(days=3_000_000)
    assert clock.now() == START
    assert clock.advance(weeks=1, hours=1) == START + dt.timedelta(days=7, hours=1)
