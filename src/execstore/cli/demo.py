"""``execstore demo``: the main job end to end on the embedded default (SQLite + local blobs)."""

from __future__ import annotations

import sqlalchemy as sa
from rich.table import Table

from execstore.cli._common import console, run, settings_for
from execstore.config import Settings
from execstore.migrations import runner
from execstore.store import ExecStore


async def _demo(settings: Settings) -> None:
    console.rule("[bold]execstore demo")
    console.print(f"database: {settings.database_url}\nblobs:    {settings.blob_url}")
    await runner.migrate(settings.database_url, settings=settings)
    console.print(f"migrated to [bold]{runner.head_revision()}[/bold]")
    async with ExecStore.open(settings) as store:
        async with store.engine.connect() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            table = Table("table", "rows", title="schema at head")
            for name in sorted(names):
                if name == "alembic_version":
                    continue
                count = await conn.scalar(sa.text(f'SELECT count(*) FROM "{name}"'))
                table.add_row(name, str(count))
        console.print(table)


def run_demo() -> None:
    """Migrate the embedded database and walk through the main job."""
    run(_demo(settings_for()))
