"""Every ```python block of README.md runs, as printed, in order, in one namespace.

The blocks run against a fresh SQLite database and local blob directory named by
``EXECSTORE_DATABASE_URL`` / ``EXECSTORE_BLOB_URL`` (as a reader's environment would),
migrated to head first. A block may use top-level ``await``. A block that must not run
is fenced ```python no-run (there should be almost none).
"""

from __future__ import annotations

import ast
import inspect
import os
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of every ```python block that is not marked no-run."""
    blocks = []
    for match in FENCE.finditer(text):
        words = match["info"].split()
        if not words or words[0] != "python" or "no-run" in words[1:]:
            continue
        line = text.count("\n", 0, match.start("body")) + 1
        blocks.append((line, match["body"]))
    return blocks


def test_the_extractor_finds_only_runnable_python_blocks() -> None:
    text = (
        "```python\nx = 1\n```\n```sh\nls\n```\n"
        "```python no-run\nraise SystemExit\n```\n```python\ny = x\n```\n"
    )
    assert python_blocks(text) == [(2, "x = 1\n"), (11, "y = x\n")]


async def test_readme_examples_run_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execstore.migrations.runner import migrate

    url = f"sqlite+aiosqlite:///{tmp_path / 'readme.db'}"
    for name in [name for name in os.environ if name.startswith("EXECSTORE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("EXECSTORE_DATABASE_URL", url)
    monkeypatch.setenv("EXECSTORE_BLOB_URL", f"file:{tmp_path / 'blobs'}")
    monkeypatch.chdir(tmp_path)
    await migrate(url)

    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python block"
    namespace: dict[str, Any] = {"__name__": "readme"}
    for line, code in blocks:
        # Line numbers in tracebacks point into README.md.
        tree = ast.increment_lineno(ast.parse(code, mode="exec"), line - 1)
        compiled = compile(
            tree, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
        )
        outcome = eval(compiled, namespace)
        if inspect.iscoroutine(outcome):
            await outcome
