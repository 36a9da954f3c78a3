"""The ``execstore`` command: migrations, archival, maintenance and the demo."""

from __future__ import annotations

import typer

from execstore.cli import archive, db, demo, maintain, metadata
from execstore.cli._common import options

__all__ = ["app", "main"]

app = typer.Typer(
    name="execstore",
    help="Storage for workflow execution data: migrations, archival, maintenance, demo.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _global(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Storage for workflow execution data: migrations, archival, maintenance, demo.

    Exit codes: 0 done, 1 failed, 2 usage, 3 found problems.
    """
    options.debug = debug


app.add_typer(db.app, name="db")
app.add_typer(archive.app, name="archive")
app.command("demo")(demo.run_demo)
app.command("maintain")(maintain.maintain_command)

backfill = typer.Typer(help="Move legacy rows into the optimized tables, then verify the move.")
backfill.command("metadata")(metadata.backfill_metadata_command)
app.add_typer(backfill, name="backfill")


def main() -> None:
    """Entry point of the ``execstore`` console script."""
    app()
