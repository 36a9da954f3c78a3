"""What the CLI commands share: settings, logging and running a coroutine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler

from execstore.config import Settings, load_settings
from execstore.errors import ExecstoreError

__all__ = ["console", "run", "settings_for"]

T = TypeVar("T")
console = Console()


def settings_for(database_url: str | None = None, blob_url: str | None = None) -> Settings:
    """Settings from the environment, with the command line's overrides."""
    overrides = {"database_url": database_url, "blob_url": blob_url}
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ExecstoreError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; an ExecstoreError becomes a one-line message and exit status 1."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
    )
    try:
        return asyncio.run(coro)
    except ExecstoreError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
