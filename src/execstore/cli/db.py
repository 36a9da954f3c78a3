"""``execstore db ...``: move the schema between revisions and say where it is.

Every command names the database it looked at (the password hidden). ``upgrade`` and
``downgrade`` print each step as it is applied (``a -> b``); when a step fails, the steps
before it stay applied (each revision commits on its own), and the command says where the
database now stands. ``current`` exits 3 when the database is behind the package's head
(like ``alembic check``), and never creates a SQLite file that is not there. An unknown
revision is a usage error (exit 2) listing the shipped ones.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.engine import make_url

from execstore.cli._common import (
    DryRunOption,
    ExitCode,
    JsonOption,
    UrlOption,
    console,
    emit,
    err,
    run,
    settings_for,
)
from execstore.config import Settings
from execstore.db import sqlite_path
from execstore.errors import InvalidArgument
from execstore.migrations import runner

app = typer.Typer(help="Schema migrations (Alembic revisions shipped in the package).")

EMPTY = "base (empty)"


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _at(revision: str | None) -> str:
    return revision or EMPTY


def _target(revision: str) -> str:
    try:
        return runner.resolve_target(revision)
    except InvalidArgument as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(ExitCode.USAGE) from exc


def _current(settings: Settings) -> str | None:
    """The database's revision; None for an empty database or a SQLite file not there."""
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        return None
    return run(runner.current_revision(settings.database_url, settings=settings))


def _move(settings: Settings, as_json: bool, action: str, call: Any) -> list[dict[str, str]]:
    """Run ``call(on_step=...)``, printing each step; on failure, where the database is."""
    steps: list[dict[str, str]] = []

    def applied(start: str | None, end: str | None) -> None:
        steps.append({"from": _at(start), "to": _at(end)})
        if not as_json:
            console.print(f"  {_at(start)} -> {_at(end)}", highlight=False)

    if not as_json:
        console.print(f"database {_shown(settings.database_url)}", highlight=False)
    try:
        run(call(on_step=applied))
    except typer.Exit:
        now = _at(_current(settings))
        done = f"{len(steps)} step(s) applied before it" if steps else "no step was applied"
        err.print(
            f"the {action} stopped at the failed step, which changed nothing; {done}: the "
            f"database is now at {now}",
            highlight=False,
        )
        raise
    return steps


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision (default: head).")] = "head",
    sql: Annotated[
        bool,
        typer.Option("--sql", help="Print the statements the upgrade would send; change nothing."),
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Upgrade the database to REVISION (default: head), one committed step at a time."""
    target = _target(revision)
    settings = settings_for(url)
    if sql:
        statements = run(runner.upgrade_sql(settings.database_url, target, settings=settings))
        if as_json:
            emit(
                {"database": _shown(settings.database_url), "statements": statements},
                as_json=True,
                render=lambda: None,
            )
            return
        for statement in statements:
            console.print(f"{statement};\n", markup=False, highlight=False)
        console.print("-- nothing was changed", markup=False, highlight=False)
        return
    steps = _move(
        settings,
        as_json,
        "upgrade",
        lambda on_step: runner.migrate(
            settings.database_url, target, settings=settings, on_step=on_step
        ),
    )
    now = _current(settings)
    emit(
        {"database": _shown(settings.database_url), "steps": steps, "revision": _at(now)},
        as_json=as_json,
        render=lambda: console.print(
            f"database is at [bold]{_at(now)}[/bold]" + ("" if steps else " (nothing to apply)")
        ),
    )


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision ('base' empties it).")],
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Downgrade the database to REVISION; refuses where rows would be lost."""
    target = _target(revision)
    settings = settings_for(url)
    if dry_run:
        undo = run(runner.downgrade_plan(settings.database_url, target, settings=settings))
        emit(
            {"database": _shown(settings.database_url), "dry_run": True, "would_undo": undo},
            as_json=as_json,
            render=lambda: console.print(
                f"database {_shown(settings.database_url)}\n"
                f"would undo: {', '.join(undo) or 'nothing'} (nothing was changed)",
                highlight=False,
            ),
        )
        return
    steps = _move(
        settings,
        as_json,
        "downgrade",
        lambda on_step: runner.downgrade(
            settings.database_url, target, settings=settings, on_step=on_step
        ),
    )
    now = _current(settings)
    emit(
        {"database": _shown(settings.database_url), "steps": steps, "revision": _at(now)},
        as_json=as_json,
        render=lambda: console.print(f"database is at [bold]{_at(now)}[/bold]"),
    )


@app.command()
def current(as_json: JsonOption = False, url: UrlOption = None) -> None:
    """Print the database's revision and the package's head; exit 3 when behind head."""
    settings = settings_for(url)
    at = _current(settings)
    head = runner.head_revision()
    behind = at != head
    state = "behind: run `execstore db upgrade`" if behind else "up to date"
    emit(
        {
            "database": _shown(settings.database_url),
            "revision": _at(at),
            "head": head,
            "up_to_date": not behind,
        },
        as_json=as_json,
        render=lambda: console.print(
            f"database {_shown(settings.database_url)}\n"
            f"revision: [bold]{_at(at)}[/bold]  head: {head}  ({state})",
            highlight=False,
        ),
        problems=behind,
    )


@app.command()
def history(as_json: JsonOption = False) -> None:
    """List the shipped revisions, oldest first."""
    shipped = runner.revisions()

    def render() -> None:
        for r in shipped:
            console.print(f"{_at(r.down_revision)} -> {r.revision}  {r.title}", highlight=False)

    emit({"revisions": [vars(r) for r in shipped]}, as_json=as_json, render=render)


@app.command()
def heads(as_json: JsonOption = False) -> None:
    """Print the package's head revision."""
    head = runner.head_revision()
    emit({"heads": [head]}, as_json=as_json, render=lambda: console.print(head))


@app.command()
def stamp(
    revision: Annotated[str, typer.Argument(help="Revision the database already has.")],
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Record REVISION without running it (adopting a database made by other tooling)."""
    target = _target(revision)
    settings = settings_for(url)
    run(runner.stamp(settings.database_url, target, settings=settings))
    emit(
        {"database": _shown(settings.database_url), "revision": target},
        as_json=as_json,
        render=lambda: console.print(f"stamped [bold]{target}[/bold]"),
    )
