"""`pifi report`: compare runs of every family (mean ± std over seeds, Δ vs base with p and CI, curves)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import out_console, say


def wide_console():  # type: ignore[no-untyped-def]
    """The results console; piped or captured (no terminal): wide enough that no column is cut."""
    from rich.console import Console

    return out_console if out_console.is_terminal else Console(width=max(out_console.width, 240))


def report(
    run_dirs: Annotated[list[str], typer.Argument(help="Run directories, seed sweeps, or folders holding them.")],
    plot: Annotated[Optional[str], typer.Option("--plot", help="Write the validation-curve PNG here (needs matplotlib: pifi[plot]).")] = None,
    output_format: Annotated[Optional[str], typer.Option("--format", help="Print the rows as md, csv, latex or json instead of a table.")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Also a paired bootstrap over test examples with N resamples (vs the base, runs paired by seed).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Compare runs: mean ± std over seeds of each family's metrics, Δ vs the base SLM with Welch p-value and 95 % CI, extra test sets, curves."""
    from rich.table import Table

    from pifi_extract.errors import ConfigError
    from pifi_train.families import FAMILIES
    from pifi_train.report import build_report
    from pifi_train.report_render import FORMATS, by_family, differing_options, render, table_cells

    fmt = "json" if as_json else output_format
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    if bootstrap < 0:
        raise ConfigError(f"--bootstrap must be at least 0, got {bootstrap}")
    result = build_report(run_dirs, Path(plot) if plot else None, bootstrap=bootstrap)
    if fmt is not None:
        typer.echo(render(result.rows, fmt))
        return
    for family, rows in by_family(result.rows).items():
        spec = FAMILIES[family].metrics
        units = "%" if spec.primary_metric.percent else "points"
        header, cells = table_cells(rows, differing_options(rows))
        table = Table(title=f"pifi report, {family} ({units}; mean ± std over seeds; Δ {spec.primary_metric.label}, "
                            "p and CI vs the base SLM with the same options)", title_justify="left")
        numeric = header.index("seeds")
        for i, col in enumerate(header):
            table.add_column(col, justify="left" if i < numeric else "right")
        for row in cells:
            table.add_row(*row)
        wide_console().print(table)
    for skipped in result.skipped:
        say(f"unfinished, skipped: {skipped}")
    for note in result.notes:
        say(f"note: {note}")
    if result.plot is not None:
        say(f"validation curves: {result.plot}")


def register(app: typer.Typer) -> None:
    app.command()(report)
