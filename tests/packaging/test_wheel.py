"""The package as a user installs it: an sdist and a wheel built from the checkout, the
wheel installed into a fresh virtual environment, its command and its demo run there.

Built in an isolated build environment (what ``python -m build`` does for a user), so a
file the wheel forgets (a migration revision, ``py.typed``) fails here and not in
production.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import execstore

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECSTORE_")}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", dist, ROOT)
    (wheel,) = dist.glob("execstore-*.whl")
    (sdist,) = dist.glob("execstore-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "execstore/py.typed" in names
    revisions = sorted(p.name for p in (ROOT / "src/execstore/migrations/versions").glob("r*.py"))
    assert revisions
    assert [r for r in revisions if f"execstore/migrations/versions/{r}" not in names] == []
    with tarfile.open(sdist) as archive:
        assert any(n.endswith("README.md") for n in archive.getnames())

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin/pip", "install", "-q", wheel)
    version = _run(venv / "bin/execstore", "--version")
    assert version.strip() == f"execstore {execstore.__version__}"

    work = tmp_path / "elsewhere"
    work.mkdir()
    out = _run(venv / "bin/execstore", "demo", cwd=work)
    assert "the storage report" in out
    assert "done in" in out
    installed = _run(venv / "bin/python", "-c", "import execstore; print(execstore.__file__)")
    assert str(venv) in installed
