"""`pifi report`: compare runs (base vs pifi, seeds, significance, extra test sets, curves)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import out_console, say


def report(
    run_dirs: Annotated[list[str], typer.Argument(help="Run directories, seed sweeps, or folders holding them.")],
    plot: Annotated[Optional[str], typer.Option("--plot", help="Where to write the validation-curve PNG (default pifi-report.png; needs matplotlib).")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not draw the PNG.")] = False,
    output_format: Annotated[Optional[str], typer.Option("--format", help="Print the rows as md, csv, latex or json instead of a table.")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Also a paired bootstrap over test examples with N resamples (vs the base, runs paired by seed).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Compare runs: base vs pifi, mean ± std over seeds, Welch p-value and 95 % CI, extra test sets, curves."""
    from rich.table import Table

    from pifi_extract.errors import ConfigError
    from pifi_train.report import FORMATS, GROUP_FIELDS, build_report, render, table_cells

    fmt = "json" if as_json else output_format
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    if bootstrap < 0:
        raise ConfigError(f"--bootstrap must be at least 0, got {bootstrap}")
    if plot is not None and not no_plot and not Path(plot).is_dir():
        from pifi_extract.outputs import check_output_file

        target = Path(plot) if Path(plot).suffix else Path(plot).with_suffix(".png")  # as the plot will be named
        check_output_file(target, "--plot")  # a FIFO, device or missing folder: one line before any run is read
    result = build_report(run_dirs, None if no_plot else Path(plot or "pifi-report.png"),
                          plot_required=plot is not None, bootstrap=bootstrap)
    if fmt is not None:
        typer.echo(render(result.rows, fmt))
        return
    header, cells = table_cells([r for r in result.rows if not r.generation])
    table = Table(title="pifi report (accuracy / macro-F1 in %, QA rows: EM / F1; mean ± std over seeds; Δ, p and CI vs base)",
                  title_justify="left")
    for col in header:
        table.add_column(col, justify="left" if col in (*header[:8],) else "right")
    for row in cells:
        table.add_row(*row)
    if any(not r.generation for r in result.rows):
        out_console.print(table)
    _print_generation_rows([r for r in result.rows if r.generation], GROUP_FIELDS)
    for skipped in result.skipped:
        out_console.print(f"[yellow]unfinished, skipped:[/] {skipped}", highlight=False, soft_wrap=True)
    for note in result.notes:
        out_console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if result.plot is not None:
        say(f"validation curves: {result.plot}")


def _print_generation_rows(rows: list, group_fields: tuple[str, ...]) -> None:
    """Seq2seq runs: sacreBLEU, BLEU-avg (nlg-eval style, 0..1 as in the paper), chrF, ROUGE; mean ± std."""
    if not rows:
        return
    from rich.table import Table

    table = Table(title="pifi report, seq2seq (sacreBLEU / chrF / ROUGE F1 in %, BLEU-avg 0..1 as the paper; "
                  "mean ± std over seeds)", title_justify="left")
    metrics = {"bleu": "BLEU", "bleu_avg": "BLEU-avg", "chrf": "chrF", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2",
               "rougeL": "ROUGE-L"}
    for col in (*group_fields[:3], "split", "seeds", *metrics.values()):
        table.add_column(col, justify="left" if col in (*group_fields[:3], "split") else "right")
    for row in rows:
        cells = [(f"{m:.4f} ± {s:.4f}" if key == "bleu_avg" else f"{m:.2f} ± {s:.2f}") if key in row.generation
                 else "" for key in metrics for m, s in [row.generation.get(key, (0.0, 0.0))]]
        table.add_row(*row.group[:3], row.split, str(len(row.seeds)), *cells)
    out_console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(report)
