"""Run every benchmark, then write ``benchmarks/RESULTS.md``: each figure beside its target.

Each ``bench_*.py`` prints its own table and, as its last stdout line, one JSON object.
This runner collects those objects, flattens them (``a.b`` for nested keys) and writes one
table per benchmark with the targets the issues set (``TARGETS``), the date, the machine
and the commit. A figure without a target is listed as measured.

    python benchmarks/run_all.py            # all of them
    python benchmarks/run_all.py logs rag   # only bench_logs.py and bench_rag.py

Every run keeps each benchmark's figures, with the date and commit they were measured
at, in ``benchmarks/results.json`` and rewrites RESULTS.md from it: running some of them
again replaces their sections and leaves the others as they were measured.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "RESULTS.md"
STORED = HERE / "results.json"

# benchmark -> figure -> (comparison, target, goal or None)
TARGETS: dict[str, dict[str, tuple[str, float, float | None]]] = {
    "blob": {
        "cold_read_ratio": ("<=", 1.15, None),
        "cached_read_ratio": ("<=", 0.01, None),
    },
    "results": {
        "result_column_bytes": ("<=", 300, None),
        "screenshot_bytes_per_row": ("<=", 150, None),
        "archive_row_bytes": ("<=", 150, None),
    },
    "dashboard": {
        "list_latency_ratio": ("<=", 1.5, 1.1),
        "get_latency_ratio": ("<=", 1.5, 1.1),
        "slim_bytes_per_row": ("<=", 300, 250),
    },
    "rag": {
        "bytes_ratio": ("<=", 0.10, 0.05),
        "save_latency_ratio": ("<=", 1.5, None),
        "get_latency_ratio": ("<=", 1.5, None),
    },
    "logs": {
        "ingest_vs_copy": (">=", 0.7, 0.9),
        "ingest_vs_orm": (">=", 10, None),
        "hot_bytes_ratio": ("<=", 0.7, 0.6),
        "archive_bytes_ratio": ("<=", 0.2, 0.1),
        "pointer_bytes_per_archived_row": ("<=", 2, None),
    },
    "audit": {
        "hot_bytes_ratio": ("<=", 0.5, 0.3),
        "verify_records_per_s": (">=", 100_000, 200_000),
    },
    "storage": {
        "monthly_growth_reduction": (">=", 0.60, 0.95),
    },
}


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``; lists are kept whole."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return flat


def verdict(value: Any, rule: tuple[str, float, float | None]) -> str:
    """``met``, ``goal met`` or ``MISSED`` for ``value`` against its target."""
    op, target, goal = rule
    if not isinstance(value, int | float):
        return "n/a"

    def ok(limit: float) -> bool:
        return value <= limit if op == "<=" else value >= limit

    if goal is not None and ok(goal):
        return "goal met"
    return "met" if ok(target) else "MISSED"


def run(script: Path) -> dict[str, Any] | None:
    """Run one benchmark (output passes through); its last stdout line parsed as JSON."""
    print(f"\n=== {script.name}", flush=True)
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    assert proc.stdout is not None
    last = ""
    for line in proc.stdout:
        sys.stdout.write(line)
        if line.strip():
            last = line.strip()
    if proc.wait() != 0:
        return None
    try:
        parsed = json.loads(last)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _command(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(results: dict[str, dict[str, Any]]) -> str:
    """RESULTS.md as text, from the stored runs (see :func:`main`)."""
    lines = [
        "# Benchmark results",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"- PostgreSQL: {_command('psql', '--version')}",
        "",
        "Written by `make bench` (`benchmarks/run_all.py`). Ratios are against a baseline",
        "measured in the same run; the machine is shared and noisy, so absolute timings vary",
        "between runs more than the ratios do.",
    ]
    for name, stored in sorted(results.items()):
        lines += [
            "",
            f"## {name}",
            "",
            f"Measured {stored['date']} at commit {stored['commit']}.",
            "",
        ]
        data = stored["figures"]
        if data is None:
            lines.append("The benchmark failed; see `make bench` output.")
            continue
        rules = TARGETS.get(name, {})
        lines += ["| figure | measured | target | goal | verdict |", "|---|---:|---|---|---|"]
        flat = flatten(data)
        ordered = [k for k in rules if k in flat] + [k for k in flat if k not in rules]
        for key in ordered:
            value = flat[key]
            shown = f"{value:,}" if isinstance(value, int) else str(value)
            if isinstance(value, float):
                shown = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
            rule = rules.get(key)
            target = f"{rule[0]} {rule[1]:g}" if rule else ""
            goal = f"{rule[0]} {rule[2]:g}" if rule and rule[2] is not None else ""
            lines.append(
                f"| {key} | {shown} | {target} | {goal} | {verdict(value, rule) if rule else ''} |"
            )
        missing = [k for k in rules if k not in flat]
        for key in missing:
            lines.append(f"| {key} | (not reported) | | | MISSED |")
    return "\n".join(lines) + "\n"


def main(only: list[str]) -> int:
    """Run the benchmarks (all, or those named); the exit status is the number that failed."""
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in only]
    stored: dict[str, dict[str, Any]] = json.loads(STORED.read_text()) if STORED.exists() else {}
    commit = _command("git", "-C", str(HERE), "rev-parse", "--short", "HEAD")
    changed = _command(
        "git",
        "-C",
        str(HERE.parent),
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "src",
        "benchmarks/*.py",
        "tests",
    )
    if changed:
        commit += " with uncommitted changes"
    failed = 0
    for script in scripts:
        figures = run(script)
        failed += figures is None
        stored[script.stem.removeprefix("bench_")] = {
            "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
            "commit": commit,
            "figures": figures,
        }
        # Written after each benchmark, so an interrupted run keeps what it measured.
        STORED.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
        RESULTS.write_text(render(stored))
    print(f"\nwrote {RESULTS}")
    return failed


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
