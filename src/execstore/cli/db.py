"""``execstore db ...``: move the schema between revisions and say where it is."""

from __future__ import annotations

from typing import Annotated

import typer

from execstore.cli._common import DryRunOption, console, run, settings_for
from execstore.migrations import runner

app = typer.Typer(help="Schema migrations (Alembic revisions shipped in the package).")

UrlOption = Annotated[
    str | None, typer.Option("--url", help="Database URL (default: EXECSTORE_DATABASE_URL).")
]


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    url: UrlOption = None,
) -> None:
    """Upgrade the database to REVISION (default: head)."""
    settings = settings_for(url)
    run(runner.migrate(settings.database_url, revision, settings=settings))
    current = run(runner.current_revision(settings.database_url, settings=settings))
    console.print(f"database is at [bold]{current}[/bold]")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision ('base' empties it).")],
    dry_run: DryRunOption = False,
    url: UrlOption = None,
) -> None:
    """Downgrade the database to REVISION; refuses where rows would be lost."""
    settings = settings_for(url)
    if dry_run:
        steps = run(runner.downgrade_plan(settings.database_url, revision, settings=settings))
        undone = ", ".join(steps) or "nothing"
        console.print(f"would undo: {undone} (nothing was changed)")
        return
    run(runner.downgrade(settings.database_url, revision, settings=settings))
    current = run(runner.current_revision(settings.database_url, settings=settings))
    console.print(f"database is at [bold]{current or 'base (empty)'}[/bold]")


@app.command()
def current(url: UrlOption = None) -> None:
    """Print the database's revision and the package's head."""
    settings = settings_for(url)
    at = run(runner.current_revision(settings.database_url, settings=settings))
    head = runner.head_revision()
    state = "up to date" if at == head else "behind: run `execstore db upgrade`"
    console.print(f"database: [bold]{at or 'base (empty)'}[/bold]  head: {head}  ({state})")


@app.command()
def stamp(
    revision: Annotated[str, typer.Argument(help="Revision the database already has.")],
    url: UrlOption = None,
) -> None:
    """Record REVISION without running it (adopting a database made by other tooling)."""
    settings = settings_for(url)
    run(runner.stamp(settings.database_url, revision, settings=settings))
    console.print(f"stamped [bold]{revision}[/bold]")
