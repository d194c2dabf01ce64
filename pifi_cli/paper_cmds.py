"""`pifi paper TABLE`: print the commands that reproduce one of the paper's tables."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pifi_train.paper import table_names

from .common import say


def paper(
    table: Annotated[Optional[str], typer.Argument(help=f"Table number ({', '.join(table_names())}); none: list them.")] = None,
) -> None:
    """Print the pifi commands that reproduce a table of the PiFi paper (nothing is run)."""
    from pifi_train.paper import TABLES, table_commands, table_names

    if table is None:
        for name in table_names():
            say(f"table {name}: {TABLES[name][0]}")
        return
    what, commands = table_commands(table)
    say(f"# table {table}: {what}")
    for line in commands:
        say(line)


def register(app: typer.Typer) -> None:
    app.command()(paper)
