"""Writing ``pifi report`` rows: one table per task family (its own metrics), as md, csv, latex or json, and the
validation-curve PNG. Only the options that differ between rows get a column. Torch-free."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Sequence

from pifi_extract.errors import ConfigError

from .curves import arm_color, plot_validation_curves
from .families import FAMILIES
from .options import default_of, option_fields, result_options
from .report_compare import DEFAULT_AGAINST, LayerInfo, implied
from .stats import Difference

if TYPE_CHECKING:
    from .report import GroupRow, RunRecord

FORMATS = ("md", "csv", "latex", "json")
ALWAYS = ("task", "train_file", "slm", "method")  # shown in their own columns


def distinct_tails(values: Sequence[str], minimum: int = 1) -> dict[str, str]:
    """Each value (a path, Hub id or name) as its shortest trailing part — at least ``minimum`` components —
    that no other value ends with: ``/a/x/bert`` and ``/b/y/bert`` stay ``x/bert`` and ``y/bert``."""
    parts = {v: PurePosixPath(v).parts if "/" in v else (v,) for v in set(values)}
    shown = {}
    for value, mine in parts.items():
        k = min(minimum, len(mine))
        while k < len(mine) and any(other != value and theirs[-k:] == mine[-k:] for other, theirs in parts.items()):
            k += 1
        shown[value] = "/".join(mine[-k:]) if k < len(mine) or not value.startswith("/") else value
    return shown


def _text(value: Any) -> str:
    if value is None:
        return "-"
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _is_path(text: str) -> bool:
    return "/" in text and (bool(PurePosixPath(text).suffix) or text.startswith(("/", ".", "~")) or Path(text).exists())


def _layer_text(layers: Sequence[LayerInfo], tails: dict[str, str]) -> str:
    return "+".join(f"{tails[layer.source]}#{layer.index}" if layer.index is not None else tails[layer.source]
                    for layer in layers) or "-"


def display_names(rows: Sequence[GroupRow]) -> list[dict[str, str]]:
    """Per row: ``task``, ``slm``, ``layer`` and each option as the tables show them — paths and Hub ids cut to
    the trailing part that tells the rows apart (files keep their folder: ``data/train.csv``), layers as
    ``<source>#<index>`` (plus the sha256 prefix where two different layers would read the same)."""
    task = lambda r: _text(r.options.get("task") or r.options.get("train_file"))  # noqa: E731
    tasks = distinct_tails([task(r) for r in rows], minimum=2)
    slms = distinct_tails([_text(r.options.get("slm")) for r in rows])
    sources = distinct_tails([layer.source for r in rows for layer in r.layers])
    layer_texts = [_layer_text(r.layers, sources) for r in rows]
    for i, r in enumerate(rows):  # the same text for different layers (one source extracted twice): add the hash
        if any(layer_texts[j] == layer_texts[i] and rows[j].layers != r.layers for j in range(len(rows))):
            layer_texts[i] += "@" + ",".join(layer.sha256[:8] for layer in r.layers)
    columns = {name for r in rows for name in r.options}
    paths = {name: distinct_tails([_text(r.options.get(name)) for r in rows], minimum=2) for name in columns
             if any(_is_path(_text(r.options.get(name))) for r in rows)}
    return [{**{name: paths[name][_text(v)] if name in paths else _text(v) for name, v in r.options.items()},
             "task": tasks[task(r)] if _is_path(task(r)) else task(r),
             "slm": slms[_text(r.options.get("slm"))], "layer": layer_texts[i]} for i, r in enumerate(rows)]


def _pm(metric: Any, mean_std: tuple[float, float], seeds: int) -> str:
    mean, std = mean_std
    return metric.show(mean) if seeds == 1 else f"{metric.show(mean)} ± {metric.show(std)}"


def _ci(d: Difference | None) -> str:
    return f"[{d.ci_low:+.2f}, {d.ci_high:+.2f}]" if d is not None else ""


def delta_header(label: str, against: str = DEFAULT_AGAINST) -> str:
    return f"Δ {label} vs {'base' if against == DEFAULT_AGAINST else against}"


def table_cells(rows: Sequence[GroupRow], differing: Sequence[str],
                against: str = DEFAULT_AGAINST) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of one family's rows (mean ± std over seeds; a single seed: the value alone)."""
    family = FAMILIES[rows[0].family]
    spec = family.metrics
    shown = [m for m in (*spec.headline, *spec.variants) if any(m.key in r.metrics for r in rows)]
    extras = sorted({name for r in rows for name in r.extra})
    bootstrap = any(r.bootstrap is not None for r in rows)
    columns = [n for n in differing if n not in ALWAYS]
    header = ["task", "SLM", "method", "layer", *columns, "split", "seeds", *[m.label for m in shown],
              delta_header(spec.primary_metric.label, against), "p (Welch)", "95% CI"]
    header += ["p (bootstrap)", "95% CI (bootstrap)"] if bootstrap else []
    header += [f"{spec.primary_metric.label} {Path(name).name}" for name in extras]
    cells = []
    for r, names in zip(rows, display_names(rows)):
        n = len(r.seeds)
        row = [names["task"], names["slm"], str(r.options.get("method")), names["layer"],
               *[names.get(c, "-") for c in columns], r.split, str(n),
               *[_pm(m, r.metrics[m.key], n) if m.key in r.metrics else "" for m in shown],
               f"{r.delta:+.2f}" if r.delta is not None else "",
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
    differ = [n for n in names if len({repr(r.options.get(n, defaults[n])) for r in rows}) > 1]
    return [n for n in differ if not implied(n, [r.options for r in rows])]  # pooling that each SLM resolved


def render(rows: Sequence[GroupRow], fmt: str, against: str = DEFAULT_AGAINST) -> str:
    """The report as Markdown, CSV, LaTeX (tabular) or JSON text; one table per family."""
    if fmt == "json":
        return json.dumps([{**asdict(r), "metrics": {k: {"mean": m, "std": s} for k, (m, s) in r.metrics.items()},
                            "primary": FAMILIES[r.family].metrics.primary, "compared_with": against}
                           for r in rows], indent=2, default=str)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    blocks = []
    for family, members in by_family(rows).items():
        header, cells = table_cells(members, differing_options(members), against)
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


def _label_parts(rows: Sequence[GroupRow]) -> tuple[list[list[str]], list[str]]:
    """Per row, what tells it apart from the others (method and layer always; task, SLM and options where they
    differ among the rows that have them); and what all rows share (task, SLM), for a title."""
    names = display_names(rows)
    varies = {k: len({n.get(k, "-") for n in names if n.get(k, "-") != "-"}) > 1
              for k in ("task", "slm", *[c for c in differing_options(rows) if c not in ALWAYS])}
    options = [c for c in varies if c not in ("task", "slm") and varies[c]]
    parts = [[*([n["task"]] if varies["task"] else []), *([n["slm"]] if varies["slm"] else []),
              str(r.options.get("method")), *([n["layer"]] if n["layer"] != "-" else []),
              *[f"{c}={n[c]}" for c in options if n.get(c, "-") != "-"]] for r, n in zip(rows, names)]
    common = [names[0][k] for k in ("task", "slm") if names and not varies[k]]
    return parts, common


def row_label(row: GroupRow, rows: Sequence[GroupRow]) -> str:
    """A short name of ``row`` among ``rows`` (notes, legends)."""
    parts, _ = _label_parts(rows)
    return " ".join(parts[[id(r) for r in rows].index(id(row))])


@dataclass
class CurveLines:
    """What the report's PNG draws: a line per row (label -> its seeds' curves), a colour each, title, axis."""

    curves: dict[str, list[list[float]]]
    colors: list[str | None]
    title: str
    ylabel: str


def curve_lines(records: Sequence[RunRecord], rows: Sequence[GroupRow]) -> CurveLines:
    """The primary validation metric per epoch of each row's seeds, labelled by what tells the row apart (what
    all rows share goes in the title), coloured by arm as ``pifi demo``'s plot (:func:`arm_color`)."""
    by_run = {str(r.path): r for r in records}
    parts, common = _label_parts(rows)
    curves, colors, units = {}, [], set()
    for row, label in zip(rows, parts):
        metric = FAMILIES[row.family].metrics.primary_metric
        scale = 1.0 if metric.percent else 0.01  # the plot shows fractions ×100
        members = [[v * scale for v in by_run[p].curve] for p in row.runs if by_run[p].curve]
        if members:
            units.add(f"{metric.label}{' (%)' if metric.percent else ''}")
            curves[f"{' '.join(label)} (n={len(row.seeds)})"] = members
            colors.append(arm_color(str(row.options.get("method")), bool(row.options.get("post_norm"))))
    title = f"{' · '.join(common)}{': ' if common else ''}validation curves, mean over seeds"
    return CurveLines(curves, colors, title, f"validation {' / '.join(sorted(units))}")


def plot_curves(records: Sequence[RunRecord], rows: Sequence[GroupRow], path: Path) -> Path:
    """The PNG of :func:`curve_lines`; returns the file written. A folder gets ``pifi-report.png`` inside; a
    name without a suffix gets ``.png`` (as matplotlib would add)."""
    path = Path(path)
    path = path / "pifi-report.png" if path.is_dir() else (path if path.suffix else path.with_suffix(".png"))
    lines = curve_lines(records, rows)
    if not lines.curves:
        raise ConfigError("--plot: no run recorded validation metrics per epoch", "drop --plot")
    return plot_validation_curves(lines.curves, path, title=lines.title, ylabel=lines.ylabel, colors=lines.colors)
