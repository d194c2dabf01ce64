"""``pifi report``: compare runs — base vs PiFi, mean ± std over seeds, significance, validation curves.

Runs are found under the given paths (run directories, seed sweeps, or folders of
them) and grouped by everything but the seed (task (with its --train-fraction), SLM,
method (with --layer-init random / --train-layer), plug, attention, post-norm, layer).
Each group gets the mean and sample standard deviation of its final test metrics
(validation where a run has no test split), its difference to the base model of the
same task and SLM with Welch's t-test p-value and 95 % CI over seeds, optionally a
paired bootstrap over test examples, and the accuracy on every --extra-test set.
:func:`render` writes the rows as md, csv, latex or json. The PNG needs matplotlib (``pifi[plot]``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError, SourceNotFoundError

from . import run_files
from .curves import arm_color, plot_validation_curves
from .layer_ref import recorded_layers
from .stats import Difference, mean_std, paired_bootstrap, welch_difference


@dataclass(frozen=True)
class RunRecord:
    """One finished run as the report sees it."""

    path: Path
    group: tuple[str, ...]
    seed: int
    split: str  # "test", or "validation" when the run has no test split
    accuracy: float
    macro_f1: float
    curve: list[float]  # validation accuracy per epoch (seq2seq: validation BLEU / 100)
    extra: dict[str, float] = field(default_factory=dict)  # --extra-test name -> accuracy
    metric: str = "accuracy"  # QA runs: "exact_match" (accuracy/macro_f1 then hold EM/F1)
    generation: dict[str, float] = field(default_factory=dict)  # seq2seq runs: BLEU, ROUGE... (else empty)


@dataclass
class GroupRow:
    """Mean ± std of one configuration over its seeds."""

    group: tuple[str, ...]
    split: str
    seeds: list[int]
    accuracy_mean: float
    accuracy_std: float
    macro_f1_mean: float
    macro_f1_std: float
    delta_vs_base: float | None = None  # accuracy points vs the base model of the same task and SLM
    welch: Difference | None = None  # accuracy − base's over seeds: Welch's t-test p-value, 95 % CI
    bootstrap: Difference | None = None  # paired bootstrap over test examples (--bootstrap N)
    extra: dict[str, tuple[float, float]] = field(default_factory=dict)  # --extra-test -> accuracy mean, std
    metric: str = "accuracy"  # QA groups: "exact_match" (the accuracy/macro_f1 fields hold EM/F1)
    generation: dict[str, list[float]] = field(default_factory=dict)  # seq2seq: metric -> [mean, std]


@dataclass
class Report:
    rows: list[GroupRow]
    records: list[RunRecord]
    skipped: list[str] = field(default_factory=list)
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)


GENERATION_METRICS = ("bleu", "bleu_avg", "chrf", "rouge1", "rouge2", "rougeL")
GROUP_FIELDS = ("task", "slm", "method", "plug", "attention", "post_norm", "layer")


def _group_of(record: dict[str, Any]) -> tuple[str, ...]:
    options = record["options"]
    layer = record.get("layer")
    pifi = options["method"] == "pifi"
    task = options.get("task") or Path(options.get("train_file") or "?").stem
    if options.get("train_fraction") is not None:
        task = f"{task}[{options['train_fraction']:g}]"
    method = options["method"] + ("-random" if options.get("layer_init") == "random" else "")
    method += "-full" if options.get("train_layer") else ""
    return (
        task,
        options["slm"],
        method,
        options["plug"] if pifi else "-",
        options["attention"] if pifi and options["plug"] == "sequence" else "-",
        ("post-norm" if options["post_norm"] else "raw") if pifi else "-",
        "+".join(f"{entry.get('source')}#{entry.get('layer_index')}" for entry in recorded_layers(record))
        if pifi and layer else "-",
    )


def find_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Every run directory under ``paths`` (each path: a run, a sweep, or a folder holding them)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise SourceNotFoundError(f"no such run directory: {path}")
        candidates = [path / run_files.CONFIG] if (path / run_files.CONFIG).is_file() else sorted(path.rglob(run_files.CONFIG))
        for config in candidates:
            if config.parent.name == run_files.CHECKPOINT_DIR:
                continue  # the SLM's config.json saved beside the checkpoint
            if run_files.is_run_dir(config.parent) and config.parent not in found:
                found.append(config.parent)
    if not found:
        raise ConfigError(f"no pifi runs under {', '.join(map(str, paths))}")
    return found


def load_record(run_dir: Path) -> RunRecord | None:
    """The run's final numbers, or None when it has not finished."""
    record = run_files.read_json(run_dir / run_files.CONFIG)
    metrics_path = run_dir / run_files.METRICS
    if not metrics_path.is_file():
        return None
    metrics = run_files.read_json(metrics_path)
    final = metrics.get("final")
    if not final:
        return None
    split = "test" if final.get("test") else "validation"
    if "bleu" in final[split]:  # a seq2seq run (pifi_train.seq2seq): generation metrics, no accuracy
        generation = {k: float(final[split][k]) for k in GENERATION_METRICS if k in final[split]}
        return RunRecord(run_dir, _group_of(record), int(record["seed"]), split, float("nan"), float("nan"),
                         [e["validation"]["bleu"] / 100 for e in metrics["epochs"]], generation=generation)
    extra = {name: m["accuracy"] for name, m in (final.get("extra_tests") or {}).items()}
    first, second = ("exact_match", "f1") if "exact_match" in final[split] else ("accuracy", "macro_f1")
    return RunRecord(run_dir, _group_of(record), int(record["seed"]), split, final[split][first],
                     final[split][second], [e["validation"][first] for e in metrics["epochs"]], extra, first)


def _correct(run_dir: Path, split: str) -> list[bool]:
    """Per test example: was the run right (test_predictions.json, written by the run)."""
    path = run_dir / run_files.PREDICTIONS
    if not path.is_file():
        raise ConfigError(f"--bootstrap: {run_dir} has no {run_files.PREDICTIONS}",
                          "it needs runs trained by a pifi version that saves per-example test predictions")
    entry = run_files.read_json(path).get(split)
    if not entry:
        raise ConfigError(f"--bootstrap: {path} has no {split!r} predictions")
    return [p == y for p, y in zip(entry["predictions"], entry["labels"])]


def _bootstrap(members: Sequence[RunRecord], base: Sequence[RunRecord], samples: int) -> Difference | None:
    """Paired bootstrap of a group against its base: runs paired by seed (the same test examples)."""
    base_by_seed = {b.seed: b for b in base}
    pairs = [(m, base_by_seed[m.seed]) for m in members if m.seed in base_by_seed and m.split == "test"]
    if not pairs:
        return None
    return paired_bootstrap([_correct(m.path, "test") for m, _ in pairs],
                            [_correct(b.path, "test") for _, b in pairs], samples)


def summarize(records: Sequence[RunRecord], bootstrap: int = 0) -> list[GroupRow]:
    """One row per configuration, base rows first within each (task, SLM); ``bootstrap`` N > 0 adds a
    paired bootstrap (N resamples of the test examples) against the base."""
    groups: dict[tuple[tuple[str, ...], str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.group, r.split), []).append(r)
    rows, members_of = [], {}
    for (group, split), members in groups.items():
        nan = (float("nan"), float("nan"))  # seq2seq runs have no accuracy
        acc, acc_std = nan if members[0].generation else mean_std([m.accuracy for m in members])
        f1, f1_std = nan if members[0].generation else mean_std([m.macro_f1 for m in members])
        names = sorted({name for m in members for name in m.extra})
        extra = {name: mean_std([m.extra[name] for m in members if name in m.extra]) for name in names}
        rows.append(GroupRow(group, split, sorted(m.seed for m in members), acc, acc_std, f1, f1_std, extra=extra,
                             metric=members[0].metric))
        rows[-1].generation = {k: list(mean_std([m.generation[k] for m in members]))
                               for k in GENERATION_METRICS if all(k in m.generation for m in members)}
        members_of[(group, split)] = members
    base = {(r.group[0], r.group[1], r.split): r for r in rows if r.group[2] == "base"}
    for row in rows:
        reference = base.get((row.group[0], row.group[1], row.split))
        if reference is not None and row.group[2] != "base" and not row.generation:
            row.delta_vs_base = row.accuracy_mean - reference.accuracy_mean
            mine, theirs = members_of[(row.group, row.split)], members_of[(reference.group, reference.split)]
            row.welch = welch_difference([m.accuracy for m in mine], [b.accuracy for b in theirs])
            if bootstrap:
                row.bootstrap = _bootstrap(mine, theirs, bootstrap)
    rows.sort(key=lambda r: (r.group[0], r.group[1], r.group[2] != "base", r.group))
    return rows


FORMATS = ("md", "csv", "latex", "json")


def table_cells(rows: Sequence[GroupRow]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the report (accuracy / macro-F1 in %, mean ± std over seeds)."""
    extras = sorted({name for r in rows for name in r.extra})
    bootstrap = any(r.bootstrap is not None for r in rows)
    header = [*GROUP_FIELDS, "split", "seeds", "accuracy", "macro-F1", "Δ acc vs base", "p (Welch)", "95% CI"]
    header += ["p (bootstrap)", "95% CI (bootstrap)"] if bootstrap else []
    header += [f"acc {Path(name).name}" for name in extras]
    pm = lambda mean, std: f"{100 * mean:.2f} ± {100 * std:.2f}"  # noqa: E731
    ci = lambda d: f"[{100 * d.ci_low:+.2f}, {100 * d.ci_high:+.2f}]" if d is not None else ""  # noqa: E731
    p = lambda d: f"{d.p_value:.3g}" if d is not None else ""  # noqa: E731
    cells = []
    for r in rows:
        split = r.split if r.metric == "accuracy" else f"{r.split} (EM / F1)"
        row = [*r.group, split, str(len(r.seeds)), pm(r.accuracy_mean, r.accuracy_std),
               pm(r.macro_f1_mean, r.macro_f1_std),
               f"{100 * r.delta_vs_base:+.2f}" if r.delta_vs_base is not None else "", p(r.welch), ci(r.welch)]
        row += [p(r.bootstrap), ci(r.bootstrap)] if bootstrap else []
        row += [pm(*r.extra[name]) if name in r.extra else "" for name in extras]
        cells.append(row)
    return header, cells


def render(rows: Sequence[GroupRow], fmt: str) -> str:
    """The report as Markdown, CSV, LaTeX (tabular) or JSON text."""
    if fmt == "json":
        return json.dumps([{**asdict(r), "group": dict(zip(GROUP_FIELDS, r.group))} for r in rows], indent=2)
    header, cells = table_cells(rows)
    if fmt == "md":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells])
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *cells])
        return buffer.getvalue().rstrip("\n")
    if fmt == "latex":
        escape = lambda t: (t.replace("\\", "\\textbackslash{}").replace("&", "\\&").replace("%", "\\%")  # noqa: E731
                            .replace("_", "\\_").replace("#", "\\#").replace("±", "$\\pm$")
                            .replace("Δ", "$\\Delta$"))
        lines = ["\\begin{tabular}{" + "l" * len(GROUP_FIELDS) + "l" + "r" * (len(header) - len(GROUP_FIELDS) - 1)
                 + "}", "\\hline", " & ".join(map(escape, header)) + " \\\\", "\\hline"]
        lines += [" & ".join(map(escape, row)) + " \\\\" for row in cells]
        return "\n".join(lines + ["\\hline", "\\end{tabular}"])
    raise ConfigError(f"unknown report format {fmt!r}", f"use one of {', '.join(FORMATS)}")


def plot_curves(records: Sequence[RunRecord], path: Path) -> Path:
    """Validation accuracy per epoch, mean over seeds, one line per configuration; returns the file written.

    A folder gets ``pifi-report.png`` inside; a name without a suffix gets ``.png`` (as matplotlib would add).
    """
    path = Path(path)
    path = path / "pifi-report.png" if path.is_dir() else (path if path.suffix else path.with_suffix(".png"))
    curves: dict[tuple[str, ...], list[list[float]]] = {}
    for r in records:
        curves.setdefault(r.group, []).append(r.curve)
    labelled, colors = {}, []
    for group, members in sorted(curves.items()):
        label = " ".join(g for g in (group[0], Path(group[1]).name, *group[2:6]) if g != "-")
        labelled[f"{label} (n={len(members)})"] = members
        colors.append(arm_color(group[2], group[5]))  # the same colour per arm as `pifi demo`'s plot
    return plot_validation_curves(labelled, path, colors=colors)


def build_report(paths: Sequence[str | Path], plot_path: Path | None = None, plot_required: bool = True,
                 bootstrap: int = 0) -> Report:
    """Find, load and summarize runs; write the curves PNG to ``plot_path`` when given.

    Without matplotlib, ``plot_required=False`` turns the missing plot into a note instead of an error.
    """
    records, skipped = [], []
    for run_dir in find_run_dirs(paths):
        record = load_record(run_dir)
        if record is None:
            skipped.append(str(run_dir))
        else:
            records.append(record)
    if not records:
        raise ConfigError(f"no finished runs among {len(skipped)} found", "finish them with `pifi train --resume`")
    report = Report(summarize(records, bootstrap), records, skipped)
    if plot_path is not None:
        try:
            report.plot = plot_curves(records, Path(plot_path))
        except ConfigError as err:
            if plot_required:
                raise
            report.notes.append(err.one_line())
    return report
