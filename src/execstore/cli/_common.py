"""What every command shares: settings, one-line errors, exit codes, --json, progress.

Exit codes (documented in the README):

    0  done
    1  failed (an error; one line on stderr saying what to do, --debug for the traceback)
    2  usage (a wrong option or argument)
    3  needs attention (a batch job set rows aside, a check or reconcile found problems)

Tables and results go to stdout; progress bars, logs and errors go to stderr, so with
``--json`` the last line of stdout is one JSON object a machine can parse.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import signal
import socket
import sys
import threading
import traceback
import uuid
import warnings
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import exc as sa_exc

from execstore.config import Settings, UnknownSettingWarning, load_settings
from execstore.errors import ExecstoreError, first_line

__all__ = [
    "BlobOption",
    "DryRunOption",
    "ExitCode",
    "Interrupted",
    "JsonOption",
    "OrgOption",
    "StopRequest",
    "UrlOption",
    "console",
    "emit",
    "err",
    "options",
    "progress",
    "run",
    "settings_for",
    "size_text",
    "summary_table",
]

T = TypeVar("T")
# Piped output (cron mail, CI logs) gets room for the wide tables instead of 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True)


class ExitCode(enum.IntEnum):
    """What ``execstore`` exits with."""

    OK = 0
    FAILED = 1
    USAGE = 2
    PROBLEMS = 3
    """Needs attention: a report's ``needs_attention`` (something was set aside)."""


class _Options:
    debug: bool = False


options = _Options()

UrlOption = Annotated[
    str | None, typer.Option("--url", help="Database URL (default: EXECSTORE_DATABASE_URL).")
]
BlobOption = Annotated[
    str | None, typer.Option("--blob-url", help="Blob store (default: EXECSTORE_BLOB_URL).")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object as the last line of stdout.")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Report what would change; change nothing.")
]


OrgOption = Annotated[
    uuid.UUID | None, typer.Option("--org", help="Only this organization (default: all).")
]


def _fail(message: str, exc: BaseException) -> typer.Exit:
    if options.debug:
        err.print("".join(traceback.format_exception(exc)), markup=False, highlight=False)
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(ExitCode.FAILED)


def settings_for(database_url: str | None = None, blob_url: str | None = None) -> Settings:
    """Settings from the environment, with the command line's overrides."""
    overrides = {"database_url": database_url, "blob_url": blob_url}
    failure: ExecstoreError | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnknownSettingWarning)
        try:
            settings = load_settings(
                labels={"database_url": "--url", "blob_url": "--blob-url"},
                **{k: v for k, v in overrides.items() if v is not None},
            )
        except ExecstoreError as exc:
            failure = exc
    for warning in caught:
        err.print(f"warning: {warning.message}", markup=False, highlight=False)
    if failure is not None:
        raise _fail(str(failure), failure) from failure
    return settings


class Interrupted(BaseException):
    """Raised at a batch boundary after SIGINT or SIGTERM asked the command to stop.

    A BaseException, like KeyboardInterrupt: a job's "set the row aside and go on" handlers
    (``except Exception``) never swallow it; the unit it interrupts rolls back.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class StopRequest:
    """SIGINT/SIGTERM as :func:`run` saw them. With ``graceful``, the first signal only
    asks: :meth:`check` (called between batches) raises :class:`Interrupted`; a second
    signal, or any signal without ``graceful``, cancels the command at once."""

    graceful: bool = False
    signals: list[int] = field(default_factory=list)
    done: int = 0

    def check(self) -> None:
        if self.signals:
            raise Interrupted(self.signals[0])


def _exit_code(signum: int) -> int:
    return 128 + signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them


def _command_name() -> str:
    """``execstore`` and the command's words (``execstore archive logs``), from argv."""
    words = []
    for word in sys.argv[1:3]:
        if word.startswith("-"):
            break
        words.append(word)
    return " ".join(["execstore", *words])


def _interrupted(stop: StopRequest) -> typer.Exit:
    name = signal.Signals(stop.signals[0]).name
    activity = _command_name()
    done = f" after {stop.done:,} done" if stop.done else ""
    err.print(
        f"interrupted ({name}): {activity} stopped{done}; what it finished is committed, "
        "the rest was rolled back, and running it again continues where it stopped",
        markup=False,
        highlight=False,
    )
    return typer.Exit(_exit_code(stop.signals[0]))


def run(coro: Coroutine[Any, Any, T], *, stop: StopRequest | None = None) -> T:
    """Run ``coro``; any error becomes one line on stderr and exit status 1.

    SIGINT and SIGTERM end it cleanly: one line says what was done and that a re-run
    continues, and the exit status is 130 (SIGINT) or 143 (SIGTERM). With a graceful
    ``stop``, the first signal lets the current batch finish (see :class:`StopRequest`).
    """
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
    )
    stop = stop or StopRequest()

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(signum: int) -> None:
            stop.signals.append(signum)
            if not stop.graceful or len(stop.signals) > 1:
                task.cancel()
            else:
                err.print(
                    f"{signal.Signals(signum).name}: stopping after the current batch "
                    "(signal again to stop at once)",
                    markup=False,
                    highlight=False,
                )

        # Signals reach the main thread only (a command run from a worker thread, as some
        # tests do, leaves them alone).
        signals = (
            (signal.SIGINT, signal.SIGTERM)
            if threading.current_thread() is threading.main_thread()
            else ()
        )
        for signum in signals:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await coro
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)

    previous_hook = threading.excepthook

    def quiet_after_stop(args: threading.ExceptHookArgs) -> None:
        # A driver thread (aiosqlite's) of a connection the stop cut short reports its
        # result to the event loop after asyncio.run closed it: noise, not a failure.
        if stop.signals and "Event loop is closed" in str(args.exc_value):
            return
        previous_hook(args)

    threading.excepthook = quiet_after_stop
    try:
        return _run_main(main, stop)
    finally:
        if not stop.signals:  # stopped: the process ends soon, its threads may still speak
            threading.excepthook = previous_hook


def _run_main(main: Callable[[], Coroutine[Any, Any, T]], stop: StopRequest) -> T:
    try:
        return asyncio.run(main())
    except (Interrupted, asyncio.CancelledError, KeyboardInterrupt) as exc:
        if not stop.signals:
            stop.signals.append(signal.SIGINT)
        raise _interrupted(stop) from exc
    except ExecstoreError as exc:
        if stop.signals:  # the stop surfaced as an error of the statement it cut short
            raise _interrupted(stop) from exc
        raise _fail(str(exc), exc) from exc
    except typer.Exit:
        raise
    except sa_exc.DBAPIError as exc:  # outside a repository: opening the database
        if stop.signals:
            raise _interrupted(stop) from exc
        raise _fail(
            f"cannot use the database: {first_line(exc)} (check --url or EXECSTORE_DATABASE_URL)",
            exc,
        ) from exc
    except (ConnectionError, socket.gaierror, TimeoutError) as exc:
        raise _fail(
            f"cannot connect: {exc} (check --url / EXECSTORE_DATABASE_URL and --blob-url / "
            "EXECSTORE_BLOB_URL)",
            exc,
        ) from exc
    except Exception as exc:
        if stop.signals:
            raise _interrupted(stop) from exc
        first = (str(exc).strip().splitlines() or [""])[0]
        raise _fail(
            f"unexpected {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
            exc,
        ) from exc


def emit(
    data: dict[str, Any], *, as_json: bool, render: Callable[[], None], problems: bool = False
) -> None:
    """Print ``data`` as one JSON line (``--json``) or as tables (``render``); then, when
    the command found ``problems``, exit with :attr:`ExitCode.PROBLEMS`."""
    if as_json:
        console.print_json(json.dumps(data, default=str), indent=None)
    else:
        render()
    if problems:
        raise typer.Exit(ExitCode.PROBLEMS)


def summary_table(title: str) -> Table:
    """A two-column table of figures: a label, then its value right-aligned."""
    table = Table(title=title)
    table.add_column("")
    table.add_column("value", justify="right")
    return table


@contextmanager
def progress(
    description: str, total: int | None = None
) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on stderr; yields ``on_progress(done, total)`` (total None: unknown)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def size_text(count: int | float) -> str:
    """``count`` bytes as B, KB, MB or GB (1024-based)."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"
