"""``pifi report``: compare runs — mean ± std over seeds, Δ vs the base SLM, significance — in every family.

Runs are found under the given paths (run directories, seed sweeps, or folders of them). Runs pool into
one row only when every option that changes a result is equal (:func:`pifi_train.options.result_options`:
all of them but the seed, paths and output options; options of another ``--method`` do not count) and
they plugged the same layer(s) (by sha256); two runs of one seed in one row are refused. Each row gets the
mean and sample standard deviation of its family's headline metrics (test; validation where a run has no
test split), its difference to the base SLM run with the same options (primary metric: Welch's t-test
p-value and 95 % CI over seeds; optionally a paired bootstrap over test examples), and its metrics on
every ``--extra-test`` set. :mod:`pifi_train.report_render` writes the rows as md, csv, latex or json.
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError, CorruptFileError, PifiError, SourceNotFoundError

from . import run_files
from .clean import resolve_cleaning
from .families import FAMILIES, Family
from .layer_ref import recorded_layers
from .options import option_fields, result_options
from .report_render import plot_curves
from .families import family_of_record
from .run_record import options_of
from .stats import Difference, mean_std, paired_bootstrap, paired_bootstrap_corpus, welch_difference

Key = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class RunRecord:
    """One finished run as the report sees it."""

    path: Path
    family: str
    key: Key  # every result option (normalised for the run's method) and the layers' sha256
    seed: int
    split: str  # "test", or "validation" when the run has no test split
    metrics: dict[str, float]
    curve: list[float]  # the primary validation metric per epoch
    extra: dict[str, dict[str, float]] = field(default_factory=dict)  # --extra-test name -> metrics
    layers: str = "-"  # where the plugged layer(s) come from, for the table


@dataclass
class GroupRow:
    """Mean ± std of one configuration over its seeds."""

    family: str
    options: dict[str, Any]
    layers: str
    split: str
    seeds: list[int]
    runs: list[str]
    metrics: dict[str, tuple[float, float]]  # key -> (mean, std over seeds)
    delta_vs_base: float | None = None  # primary metric, in the table's units (points)
    welch: Difference | None = None  # over seeds, in the table's units
    bootstrap: Difference | None = None  # over test examples, in the table's units
    extra: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)


@dataclass
class Report:
    rows: list[GroupRow]
    records: list[RunRecord]
    skipped: list[str] = field(default_factory=list)
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)


def _key(record: dict[str, Any], options: Any, family: Family) -> Key:
    """The options that change a run's result, normalised: those of another method dropped (a base run's
    --plug means nothing), the family's own values filled in (``--max-length`` unset = the family's); the
    layers by sha256."""
    method = options.method
    resolved = {"plug": family.plug(options), "max_length": family.max_length(options),
                "select_by": family.metrics.selection(options.select_by).key,
                "clean_text": resolve_cleaning(options.clean_text, options.task)}
    values = []
    for f in option_fields():
        if f.name not in result_options():
            continue
        methods = f.metadata.get("methods")
        if methods is not None and method not in methods:
            continue
        value = resolved.get(f.name, getattr(options, f.name))
        values.append((f.name, tuple(value) if isinstance(value, list) else value))
    layers = tuple(str(entry.get("sha256")) for entry in recorded_layers(record)) if method == "pifi" else ()
    return (*values, ("layer_sha256", layers))


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


def _layers_label(record: dict[str, Any]) -> str:
    entries = recorded_layers(record)
    return "+".join(f"{Path(str(e.get('source') or e.get('path') or '?')).name}#{e.get('layer_index')}"
                    for e in entries) or "-"


def load_record(run_dir: Path) -> RunRecord | None:
    """The run's final numbers, or None when it has not finished; a damaged file is one line."""
    try:
        record = run_files.read_json(run_dir / run_files.CONFIG)
        if not (run_dir / run_files.METRICS).is_file():
            return None
        metrics = run_files.read_json(run_dir / run_files.METRICS)
        final = metrics.get("final") if isinstance(metrics, dict) else None
        if not final:
            return None
        family = family_of_record(record)
        options = options_of(record, run_dir / run_files.CONFIG)
        split = "test" if final.get("test") else "validation"
        keys = [m.key for m in (*family.metrics.headline, *family.metrics.variants)]
        values = {k: float(final[split][k]) for k in keys if final[split].get(k) is not None}
        primary = family.metrics.primary
        curve = [float(e["validation"][primary]) for e in metrics.get("epochs", []) if primary in e["validation"]]
        extra = {name: {k: float(m[k]) for k in keys if m.get(k) is not None}
                 for name, m in (final.get("extra_tests") or {}).items()}
        return RunRecord(run_dir, family.name, _key(record, options, family), int(record["seed"]), split, values, curve,
                         extra, _layers_label(record) if options.method == "pifi" else "-")
    except PifiError as err:
        raise CorruptFileError(f"{run_dir}: {err.message}", err.hint or "restore the run's files, or leave it out") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CorruptFileError(f"{run_dir}: config.json or metrics.json is not a pifi run's ({type(err).__name__}: "
                               f"{' '.join(str(err).split())[:80]})", "restore the run's files, or leave it out") from None


def _per_example(run: RunRecord) -> list[dict[str, Any]]:
    """The run's per-example test rows (predictions.jsonl)."""
    path = run.path / run_files.PREDICTIONS
    rows = [r for r in run_files.read_jsonl(path) if r.get("split") == "test"] if path.is_file() else []
    if not rows:
        raise ConfigError(f"--bootstrap: {run.path} has no per-example test predictions ({run_files.PREDICTIONS})",
                          "it needs runs trained by a pifi version that saves them, with a test split")
    return rows


def _bootstrap(family: Family, members: Sequence[RunRecord], base: Sequence[RunRecord], samples: int) -> Difference | None:
    """Paired bootstrap of a group against its base: runs paired by seed (the same test examples)."""
    base_by_seed = {b.seed: b for b in base}
    pairs = [(m, base_by_seed[m.seed]) for m in members if m.seed in base_by_seed and m.split == "test"]
    if not pairs:
        return None
    spec, scale = family.metrics, family.metrics.primary_metric.points(1.0)
    rows = [(_per_example(m), _per_example(b)) for m, b in pairs]
    if spec.example_score is not None:
        score = spec.example_score
        diff = paired_bootstrap([[score(r) for r in a] for a, _ in rows], [[score(r) for r in b] for _, b in rows],
                                samples)
    else:
        assert spec.corpus_score is not None
        corpus = spec.corpus_score
        if any(len(a) != len(rows[0][0]) or len(b) != len(a) for a, b in rows):
            raise ConfigError("--bootstrap needs the same test examples in every paired run")
        diff = paired_bootstrap_corpus(lambda p, idx: corpus(rows[p][0], idx) - corpus(rows[p][1], idx), len(rows),
                                       len(rows[0][0]), samples)
        scale = 1.0  # corpus_score is in the metric's own units already
    return Difference(diff.mean * scale, diff.ci_low * scale, diff.ci_high * scale, diff.p_value, diff.resamples)


def _base_key(key: Key) -> Key:
    """The key of the base-SLM run with the same options: method base, the options of other methods dropped."""
    base_only = {f.name for f in option_fields() if f.metadata.get("methods") is None}
    values = tuple((name, "base" if name == "method" else value) for name, value in key
                   if name in base_only or name == "method")
    return (*values, ("layer_sha256", ()))


def summarize(records: Sequence[RunRecord], bootstrap: int = 0) -> list[GroupRow]:
    """One row per configuration, base rows first within each family and task; ``bootstrap`` N > 0 adds a
    paired bootstrap (N resamples of the test examples) against the base."""
    groups: dict[tuple[str, Key, str], list[RunRecord]] = {}
    for r in records:
        members = groups.setdefault((r.family, r.key, r.split), [])
        twin = next((m for m in members if m.seed == r.seed), None)
        if twin is not None:
            raise ConfigError(f"{twin.path} and {r.path} are the same configuration with the same seed {r.seed}",
                              "pass only one of them to pifi report (or train the other with another --seed)")
        members.append(r)
    rows, members_of = [], {}
    for (family_name, key, split), members in groups.items():
        family = FAMILIES[family_name]
        keys = [m.key for m in (*family.metrics.headline, *family.metrics.variants)]
        metrics = {k: mean_std([m.metrics[k] for m in members]) for k in keys if all(k in m.metrics for m in members)}
        names = sorted({name for m in members for name in m.extra})
        extra = {name: {k: mean_std([m.extra[name][k] for m in members if k in m.extra.get(name, {})])
                        for k in keys if any(k in m.extra.get(name, {}) for m in members)} for name in names}
        rows.append(GroupRow(family_name, dict(key[:-1]), members[0].layers, split, sorted(m.seed for m in members),
                             [str(m.path) for m in members], metrics, extra=extra))
        members_of[id(rows[-1])] = (key, members)
    by_key = {(r.family, members_of[id(r)][0], r.split): r for r in rows}
    for row in rows:
        key, mine = members_of[id(row)]
        if row.options.get("method") == "base":
            continue
        base = by_key.get((row.family, _base_key(key), row.split))
        if base is None:
            continue
        family = FAMILIES[row.family]
        primary = family.metrics.primary_metric
        theirs = members_of[id(base)][1]
        row.delta_vs_base = primary.points(row.metrics[primary.key][0] - base.metrics[primary.key][0])
        welch = welch_difference([primary.points(m.metrics[primary.key]) for m in mine],
                                 [primary.points(b.metrics[primary.key]) for b in theirs])
        row.welch = welch
        if bootstrap:
            row.bootstrap = _bootstrap(family, mine, theirs, bootstrap)
    rows.sort(key=lambda r: (r.family, str(r.options.get("task") or r.options.get("train_file")),
                             str(r.options.get("slm")), r.options.get("method") != "base", str(sorted(r.options.items(), key=str))))
    return rows


def build_report(paths: Sequence[str | Path], plot_path: Path | None = None, bootstrap: int = 0) -> Report:
    """Find, load and summarize runs; write the curves PNG to ``plot_path`` when given."""
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
        report.plot = plot_curves(records, report.rows, Path(plot_path))
    return report
