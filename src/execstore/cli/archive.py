"""``execstore archive ...``: result archival and the reconciler (filled by the results work)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Move bulk to blob storage and keep pointers and blobs in step.")
