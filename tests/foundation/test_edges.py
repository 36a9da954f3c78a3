"""Module edges: no module reaches into another's private names.

A name with a leading underscore is its module's own; another module that needs it needs a
public name (or the code belongs with it). Read from the source, so a new import is checked
the moment it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import execstore

PACKAGE = Path(execstore.__file__).parent


def _private_imports(path: Path, root: Path = PACKAGE) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("execstore"):
            continue
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.module}.{alias.name}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _private_imports(path)]
    assert offenders == []


def test_the_rule_sees_a_private_import(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        "from execstore.logs import ingest\nfrom execstore.logs.ingest import _months_of\n"
    )
    assert _private_imports(module, tmp_path) == ["probe.py:2 execstore.logs.ingest._months_of"]
