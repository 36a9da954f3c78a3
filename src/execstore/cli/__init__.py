"""The ``execstore`` command: migrations, archival, maintenance and the demo."""

from __future__ import annotations

import typer

from execstore.cli import archive, db, demo

__all__ = ["app", "main"]

app = typer.Typer(
    name="execstore",
    help="Storage for workflow execution data: migrations, archival, maintenance, demo.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(archive.app, name="archive")
app.command("demo")(demo.run_demo)


def main() -> None:
    """Entry point of the ``execstore`` console script."""
    app()
