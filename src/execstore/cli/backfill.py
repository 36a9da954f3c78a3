"""``execstore backfill ...``: move legacy rows into the optimized tables, verified and resumable.

Each capability adds its command to this group from a module of its own
(``backfill_rag.py``: ``execstore backfill rag``).
"""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="Move legacy rows into the optimized tables (batched, resumable, verified).")
