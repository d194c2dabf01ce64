"""``pifi report``: compare runs — base vs PiFi, mean ± std over seeds, validation curves.

Runs are found under the given paths (run directories, seed sweeps, or folders of
them) and grouped by everything but the seed (task, SLM, method, plug, attention,
post-norm, layer). Each group gets the mean and sample standard deviation of its
final test metrics (validation where a run has no test split) and its difference
to the base model of the same task and SLM. The PNG needs matplotlib (``pifi[plot]``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError, SourceNotFoundError

from . import checkpoint as ckpt
from .layer_ref import recorded_layers


@dataclass(frozen=True)
class RunRecord:
    """One finished run as the report sees it."""

    path: Path
    group: tuple[str, ...]
    seed: int
    split: str  # "test", or "validation" when the run has no test split
    accuracy: float
    macro_f1: float
    curve: list[float]  # validation accuracy per epoch


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


@dataclass
class Report:
    rows: list[GroupRow]
    records: list[RunRecord]
    skipped: list[str] = field(default_factory=list)
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)


GROUP_FIELDS = ("task", "slm", "method", "plug", "attention", "post_norm", "layer")


def _group_of(record: dict[str, Any]) -> tuple[str, ...]:
    options = record["options"]
    layer = record.get("layer")
    pifi = options["method"] == "pifi"
    return (
        options.get("task") or Path(options.get("train_file") or "?").stem,
        options["slm"],
        options["method"],
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
        candidates = [path / ckpt.CONFIG] if (path / ckpt.CONFIG).is_file() else sorted(path.rglob(ckpt.CONFIG))
        for config in candidates:
            if config.parent.name == ckpt.CHECKPOINT_DIR:
                continue  # the SLM's config.json saved beside the checkpoint
            if ckpt.is_run_dir(config.parent) and config.parent not in found:
                found.append(config.parent)
    if not found:
        raise ConfigError(f"no pifi runs under {', '.join(map(str, paths))}")
    return found


def load_record(run_dir: Path) -> RunRecord | None:
    """The run's final numbers, or None when it has not finished."""
    record = ckpt.read_json(run_dir / ckpt.CONFIG)
    metrics_path = run_dir / ckpt.METRICS
    if not metrics_path.is_file():
        return None
    metrics = ckpt.read_json(metrics_path)
    final = metrics.get("final")
    if not final:
        return None
    split = "test" if final.get("test") else "validation"
    return RunRecord(run_dir, _group_of(record), int(record["seed"]), split, final[split]["accuracy"],
                     final[split]["macro_f1"], [e["validation"]["accuracy"] for e in metrics["epochs"]])


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(records: Sequence[RunRecord]) -> list[GroupRow]:
    """One row per configuration, base rows first within each (task, SLM)."""
    groups: dict[tuple[tuple[str, ...], str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.group, r.split), []).append(r)
    rows = []
    for (group, split), members in groups.items():
        acc, acc_std = _mean_std([m.accuracy for m in members])
        f1, f1_std = _mean_std([m.macro_f1 for m in members])
        rows.append(GroupRow(group, split, sorted(m.seed for m in members), acc, acc_std, f1, f1_std))
    base = {(r.group[0], r.group[1], r.split): r.accuracy_mean for r in rows if r.group[2] == "base"}
    for row in rows:
        reference = base.get((row.group[0], row.group[1], row.split))
        if reference is not None and row.group[2] != "base":
            row.delta_vs_base = row.accuracy_mean - reference
    rows.sort(key=lambda r: (r.group[0], r.group[1], r.group[2] != "base", r.group))
    return rows


def plot_curves(records: Sequence[RunRecord], path: Path) -> Path:
    """Validation accuracy per epoch, mean over seeds, one line per configuration; returns the file written.

    A folder gets ``pifi-report.png`` inside; a name without a suffix gets ``.png`` (as matplotlib would add).
    """
    path = Path(path)
    path = path / "pifi-report.png" if path.is_dir() else (path if path.suffix else path.with_suffix(".png"))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("plotting needs matplotlib", "pip install 'pifi[plot]', or pass --no-plot") from err
    curves: dict[tuple[str, ...], list[list[float]]] = {}
    for r in records:
        curves.setdefault(r.group, []).append(r.curve)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for group, members in sorted(curves.items()):
        length = min(len(c) for c in members)
        mean = [statistics.fmean(c[i] for c in members) for i in range(length)]
        label = " ".join(g for g in (group[0], Path(group[1]).name, *group[2:6]) if g != "-")
        ax.plot(range(1, length + 1), [100 * m for m in mean], marker="o", label=f"{label} (n={len(members)})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def build_report(paths: Sequence[str | Path], plot_path: Path | None = None, plot_required: bool = True) -> Report:
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
    report = Report(summarize(records), records, skipped)
    if plot_path is not None:
        try:
            report.plot = plot_curves(records, Path(plot_path))
        except ConfigError as err:
            if plot_required:
                raise
            report.notes.append(err.one_line())
    return report
