"""Writing ``pifi report`` rows: one table per task family (its own metrics), as md, csv, latex or json, and the
validation-curve PNG. Only the options that differ between rows get a column. Torch-free."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pifi_extract.errors import ConfigError

from .curves import plot_validation_curves
from .families import FAMILIES
from .options import default_of, option_fields, result_options
from .stats import Difference

if TYPE_CHECKING:
    from .report import GroupRow, RunRecord

FORMATS = ("md", "csv", "latex", "json")
ALWAYS = ("task", "train_file", "slm", "method")  # shown in their own columns


def _short(value: Any) -> str:
    """Paths as their last two parts (a folder and a file), other values as they are."""
    text = "-" if value is None else str(value)
    if "/" in text and (Path(text).suffix or Path(text).exists()):
        return "/".join(Path(text).parts[-2:])
    return text


def task_of(options: dict[str, Any]) -> str:
    return str(options.get("task") or _short(options.get("train_file")))


def slm_of(options: dict[str, Any]) -> str:
    slm = str(options.get("slm"))
    return Path(slm).name if Path(slm).exists() or slm.startswith(("/", ".")) else slm


def _pm(metric: Any, mean_std: tuple[float, float], seeds: int) -> str:
    mean, std = mean_std
    return metric.show(mean) if seeds == 1 else f"{metric.show(mean)} ± {metric.show(std)}"


def _ci(d: Difference | None) -> str:
    return f"[{d.ci_low:+.2f}, {d.ci_high:+.2f}]" if d is not None else ""


def table_cells(rows: Sequence[GroupRow], differing: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of one family's rows (mean ± std over seeds; a single seed: the value alone)."""
    family = FAMILIES[rows[0].family]
    spec = family.metrics
    shown = [m for m in (*spec.headline, *spec.variants) if any(m.key in r.metrics for r in rows)]
    extras = sorted({name for r in rows for name in r.extra})
    bootstrap = any(r.bootstrap is not None for r in rows)
    columns = [n for n in differing if n not in ALWAYS]
    header = ["task", "SLM", "method", "layer", *columns, "split", "seeds", *[m.label for m in shown],
              f"Δ {spec.primary_metric.label} vs base", "p (Welch)", "95% CI"]
    header += ["p (bootstrap)", "95% CI (bootstrap)"] if bootstrap else []
    header += [f"{spec.primary_metric.label} {Path(name).name}" for name in extras]
    cells = []
    for r in rows:
        n = len(r.seeds)
        row = [task_of(r.options), slm_of(r.options), str(r.options.get("method")), r.layers,
               *[_short(r.options.get(c)) for c in columns], r.split, str(n),
               *[_pm(m, r.metrics[m.key], n) if m.key in r.metrics else "" for m in shown],
               f"{r.delta_vs_base:+.2f}" if r.delta_vs_base is not None else "",
               r.welch.p_text() if r.welch else "", _ci(r.welch)]
        row += [r.bootstrap.p_text() if r.bootstrap else "", _ci(r.bootstrap)] if bootstrap else []
        row += [_pm(spec.primary_metric, r.extra[name][spec.primary], n)
                if spec.primary in r.extra.get(name, {}) else "" for name in extras]
        cells.append(row)
    return header, cells


def by_family(rows: Sequence[GroupRow]) -> dict[str, list[GroupRow]]:
    grouped: dict[str, list[GroupRow]] = {}
    for r in rows:
        grouped.setdefault(r.family, []).append(r)
    return grouped


def differing_options(rows: Sequence[GroupRow]) -> list[str]:
    """The options whose values differ between rows (what tells the rows apart), in option order."""
    defaults = {f.name: default_of(f) for f in option_fields()}
    names = [n for n in defaults if n in result_options()]
    return [n for n in names if len({repr(r.options.get(n, defaults[n])) for r in rows}) > 1]


def render(rows: Sequence[GroupRow], fmt: str) -> str:
    """The report as Markdown, CSV, LaTeX (tabular) or JSON text; one table per family."""
    if fmt == "json":
        return json.dumps([{**asdict(r), "metrics": {k: {"mean": m, "std": s} for k, (m, s) in r.metrics.items()},
                            "primary": FAMILIES[r.family].metrics.primary} for r in rows], indent=2, default=str)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    blocks = []
    for family, members in by_family(rows).items():
        header, cells = table_cells(members, differing_options(members))
        blocks.append(_format(header, cells, fmt, family))
    return "\n\n".join(blocks)


def _format(header: list[str], cells: list[list[str]], fmt: str, family: str) -> str:
    if fmt == "md":
        lines = [f"**{family}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells])
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([["family", *header], *[[family, *row] for row in cells]])
        return buffer.getvalue().rstrip("\n")
    escape = lambda t: (t.replace("\\", "\\textbackslash{}").replace("&", "\\&").replace("%", "\\%")  # noqa: E731
                        .replace("_", "\\_").replace("#", "\\#").replace("±", "$\\pm$").replace("Δ", "$\\Delta$"))
    text_columns = header.index("split") + 1
    lines = [f"% {family}", "\\begin{tabular}{" + "l" * text_columns + "r" * (len(header) - text_columns) + "}",
             "\\hline", " & ".join(map(escape, header)) + " \\\\", "\\hline"]
    lines += [" & ".join(map(escape, row)) + " \\\\" for row in cells]
    return "\n".join(lines + ["\\hline", "\\end{tabular}"])


def plot_curves(records: Sequence[RunRecord], rows: Sequence[GroupRow], path: Path) -> Path:
    """The primary validation metric per epoch, mean over seeds, one line per row; returns the file written.

    A folder gets ``pifi-report.png`` inside; a name without a suffix gets ``.png`` (as matplotlib would add).
    """
    path = Path(path)
    path = path / "pifi-report.png" if path.is_dir() else (path if path.suffix else path.with_suffix(".png"))
    by_run = {str(r.path): r for r in records}
    curves, units = {}, set()
    for row in rows:
        metric = FAMILIES[row.family].metrics.primary_metric
        units.add(f"{metric.label}{' (%)' if metric.percent else ''}")
        label = " ".join([task_of(row.options), slm_of(row.options), str(row.options.get("method")),
                          *([row.layers] if row.layers != "-" else []), f"(n={len(row.seeds)})"])
        scale = 1.0 if metric.percent else 0.01  # the plot shows fractions ×100
        curves[label] = [[v * scale for v in by_run[p].curve] for p in row.runs if by_run[p].curve]
    return plot_validation_curves({k: v for k, v in curves.items() if v}, path,
                                  title="pifi report: validation curves, mean over seeds",
                                  ylabel=f"validation {' / '.join(sorted(units))}")
