"""``pifi report``: compare runs — mean ± std over seeds, Δ against another arm, significance — in every family.

Runs are found under the given paths (run directories, seed sweeps, or folders of them;
:mod:`pifi_train.report_load`). Runs pool into one row only when every option that changes a result is equal
(:func:`pifi_train.options.result_options`: all of them but the seed, paths and output options; options of
another ``--method`` do not count) and they plugged the same layer(s) (by sha256); two runs of one seed in one
row are refused. Each row gets the mean and sample standard deviation of its family's headline metrics (test;
validation where a run has no test split) and its metrics on every ``--extra-test`` set.

Each row is compared with the row ``--against`` picks (:mod:`pifi_train.report_compare`; default ``method=base``:
the base SLM with the same options): Δ of the family's primary metric, Welch's t-test p-value and 95 % CI over
seeds, and optionally a paired bootstrap over test examples (runs paired by seed; refused when the two runs were
tested on different examples). :mod:`pifi_train.report_render` writes the rows as md, csv, latex or json.
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError

from .families import FAMILIES, Family
from .report_compare import DEFAULT_AGAINST, LayerInfo, Selector, agrees, differences, parse_selector, row_fits
from .report_load import Key, RunRecord, find_run_dirs, load_record, per_example_rows
from .report_render import plot_curves, row_label
from .stats import Difference, mean_std, paired_bootstrap, paired_bootstrap_corpus, welch_difference

__all__ = ["GroupRow", "Report", "RunRecord", "build_report", "find_run_dirs", "load_record", "summarize"]


@dataclass
class GroupRow:
    """Mean ± std of one configuration over its seeds, and its difference to the row it is compared with."""

    family: str
    options: dict[str, Any]
    layers: tuple[LayerInfo, ...]
    split: str
    seeds: list[int]
    runs: list[str]
    metrics: dict[str, tuple[float, float]]  # key -> (mean, std over seeds)
    delta: float | None = None  # primary metric minus the reference row's, in the table's units (points)
    welch: Difference | None = None  # over seeds, in the table's units
    bootstrap: Difference | None = None  # over test examples, in the table's units
    against: list[str] = field(default_factory=list)  # the reference row's runs
    extra: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    note: str | None = None  # why a row has no Δ or no bootstrap


@dataclass
class Report:
    rows: list[GroupRow]
    records: list[RunRecord]
    skipped: list[str] = field(default_factory=list)
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)
    against: str = DEFAULT_AGAINST


def _identity(row: dict[str, Any]) -> tuple[Any, ...]:
    """What says which test example a per-example row is (never the prediction)."""
    return tuple(repr(row.get(k)) for k in ("index", "id", "label", "answers", "source", "reference"))


def _bootstrap(family: Family, members: Sequence[RunRecord], reference: Sequence[RunRecord],
               samples: int) -> Difference | None:
    """Paired bootstrap of a row against its reference: runs paired by seed, on the same test examples."""
    theirs_by_seed = {r.seed: r for r in reference}
    pairs = [(m, theirs_by_seed[m.seed]) for m in members if m.seed in theirs_by_seed and m.split == "test"]
    if not pairs:
        return None
    spec, scale = family.metrics, family.metrics.primary_metric.points(1.0)
    rows = [(per_example_rows(m), per_example_rows(t)) for m, t in pairs]
    for (mine, theirs), (m, t) in zip(rows, pairs):
        if [_identity(r) for r in mine] != [_identity(r) for r in theirs]:
            raise ConfigError(f"--bootstrap: {m.path} and {t.path} (seed {m.seed}) were tested on different examples",
                              "a paired bootstrap needs the same test set; compare them without --bootstrap (Welch)")
    if any(len(mine) != len(rows[0][0]) for mine, _ in rows):
        raise ConfigError("--bootstrap: the paired runs of different seeds were tested on different numbers of "
                          "examples", "compare runs with the same test set")
    if spec.example_score is not None:
        score = spec.example_score
        diff = paired_bootstrap([[score(r) for r in a] for a, _ in rows], [[score(r) for r in b] for _, b in rows],
                                samples)
    else:
        assert spec.corpus_score is not None
        corpus = spec.corpus_score
        diff = paired_bootstrap_corpus(lambda p, idx: corpus(rows[p][0], idx) - corpus(rows[p][1], idx), len(rows),
                                       len(rows[0][0]), samples)
        scale = 1.0  # corpus_score is in the metric's own units already
    return Difference(diff.mean * scale, diff.ci_low * scale, diff.ci_high * scale, diff.p_value, diff.resamples)


def _group(records: Sequence[RunRecord]) -> list[tuple[GroupRow, list[RunRecord]]]:
    """One row per (family, result options, layers, split), with its runs; two runs of one seed refused."""
    groups: dict[tuple[str, Key, str], list[RunRecord]] = {}
    for r in records:
        members = groups.setdefault((r.family, r.key, r.split), [])
        twin = next((m for m in members if m.seed == r.seed), None)
        if twin is not None:
            raise ConfigError(f"{twin.path} and {r.path} are the same configuration with the same seed {r.seed}",
                              "pass only one of them to pifi report (or train the other with another --seed)")
        members.append(r)
    grouped = []
    for (family_name, key, split), members in groups.items():
        family = FAMILIES[family_name]
        keys = [m.key for m in (*family.metrics.headline, *family.metrics.variants)]
        metrics = {k: mean_std([m.metrics[k] for m in members]) for k in keys if all(k in m.metrics for m in members)}
        names = sorted({name for m in members for name in m.extra})
        extra = {name: {k: mean_std([m.extra[name][k] for m in members if k in m.extra.get(name, {})])
                        for k in keys if any(k in m.extra.get(name, {}) for m in members)} for name in names}
        row = GroupRow(family_name, dict(key[:-1]), members[0].layers, split, sorted(m.seed for m in members),
                       [str(m.path) for m in members], metrics, extra=extra)
        grouped.append((row, members))
    return grouped


def _compare(grouped: list[tuple[GroupRow, list[RunRecord]]], against: Selector, bootstrap: int) -> None:
    """Fill each row's Δ, Welch and bootstrap against the one row ``against`` picks for it."""
    fitting = [(row, runs) for row, runs in grouped if row_fits(row.options, row.layers, against)]
    if not fitting and not against.is_default:
        raise ConfigError(f"--against {against.text!r} fits no row",
                          "name options and values as the report shows them (e.g. slm=bert-large-uncased)")
    for row, mine in grouped:
        candidates = [(other, theirs) for other, theirs in fitting if other is not row
                      and other.family == row.family and other.split == row.split
                      and agrees(row.options, other.options, row.layers, other.layers, against.names)]
        if len(candidates) > 1:
            apart = differences([(other.options, other.layers) for other, _ in candidates])
            row.note = (f"--against {against.text} fits {len(candidates)} rows for it (they differ in "
                        f"{', '.join(apart) or 'nothing shown'}): no Δ; name one of them in --against")
            continue
        if not candidates:
            continue
        reference, theirs = candidates[0]
        primary = FAMILIES[row.family].metrics.primary_metric
        row.against = reference.runs
        row.delta = primary.points(row.metrics[primary.key][0] - reference.metrics[primary.key][0])
        row.welch = welch_difference([primary.points(m.metrics[primary.key]) for m in mine],
                                     [primary.points(t.metrics[primary.key]) for t in theirs])
        if bootstrap:
            row.bootstrap = _bootstrap(FAMILIES[row.family], mine, theirs, bootstrap)
            if row.bootstrap is None:
                row.note = "no seed in common with the row it is compared with: no paired bootstrap"


def summarize(records: Sequence[RunRecord], bootstrap: int = 0,
              against: str | Selector = DEFAULT_AGAINST) -> list[GroupRow]:
    """One row per configuration, base rows first within each family and task, each compared with the row
    ``against`` picks; ``bootstrap`` N > 0 adds a paired bootstrap (N resamples of the test examples)."""
    selector = against if isinstance(against, Selector) else parse_selector(against)
    grouped = _group(records)
    _compare(grouped, selector, bootstrap)
    rows = [row for row, _ in grouped]
    rows.sort(key=lambda r: (r.family, str(r.options.get("task") or r.options.get("train_file")),
                             str(r.options.get("slm")), r.options.get("method") != "base", str(sorted(r.options.items(), key=str))))
    return rows


def build_report(paths: Sequence[str | Path], plot_path: Path | None = None, bootstrap: int = 0,
                 against: str = DEFAULT_AGAINST) -> Report:
    """Find, load and summarize runs; write the curves PNG to ``plot_path`` when given."""
    selector = parse_selector(against)  # a bad selector is refused before any run is read
    records, skipped = [], []
    for run_dir in find_run_dirs(paths):
        record = load_record(run_dir)
        if record is None:
            skipped.append(str(run_dir))
        else:
            records.append(record)
    if not records:
        raise ConfigError(f"no finished runs among {len(skipped)} found", "finish them with `pifi train --resume`")
    rows = summarize(records, bootstrap, selector)
    report = Report(rows, records, skipped, notes=[f"{row_label(r, rows)}: {r.note}" for r in rows if r.note],
                    against=selector.text)
    if plot_path is not None:
        report.plot = plot_curves(records, report.rows, Path(plot_path))
    return report
