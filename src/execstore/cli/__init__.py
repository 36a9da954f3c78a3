"""The ``execstore`` command: migrations, archival, maintenance and the demo."""

from __future__ import annotations

import os
import signal

import typer

from execstore.cli import (
    archive,
    audit,
    backfill,
    db,
    demo,
    maintain,
    report,
    retention,
)
from execstore.cli._common import options

__all__ = ["app", "main"]

app = typer.Typer(
    name="execstore",
    help="Storage for workflow execution data: migrations, archival, maintenance, demo.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from execstore import __version__

        typer.echo(f"execstore {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the installed version and exit.",
    ),
) -> None:
    """Storage for workflow execution data: migrations, archival, maintenance, demo.

    Exit codes: 0 done, 1 failed, 2 usage, 3 needs attention (rows set aside, problems found).
    """
    options.debug = debug


app.add_typer(db.app, name="db")
app.add_typer(archive.app, name="archive")
app.command("maintain")(maintain.maintain_command)
app.command("storage-report")(report.storage_report)
app.add_typer(audit.app, name="audit")
app.add_typer(backfill.app, name="backfill")
app.add_typer(retention.app, name="retention")
app.command("demo")(demo.run_demo)


def _quit_while_starting(signum: int, frame: object) -> None:
    # Before a command's run() takes the signals over: nothing has been done yet.
    os.write(2, f"interrupted ({signal.Signals(signum).name}): nothing was done\n".encode())
    os._exit(128 + signum)


def main() -> None:
    """Entry point of the ``execstore`` console script."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _quit_while_starting)
    app()
