"""A table's finished runs in the paper's layout: pifi's mean ± std per cell beside the paper's number, Δ and p.

Rows are the paper's (per SLM, or per training set in Table 3), one line per metric the paper reports; the
columns are its tasks (Table 3: its test sets). Each arm with a ``versus`` gets a Δ line: the difference of the
table's first metric to that arm (the base SLM unless the paper compares two other arms) and Welch's p-value
over seeds, beside the paper's own difference (and p-value, Table 12). Runs are read and grouped by
:mod:`pifi_train.report` (``load_record``, ``summarize``); the p-value is :func:`pifi_train.stats.welch_difference`.
Figures are the layer sweep per LLM (:func:`pifi_train.select.sweep.plot_sweep`) beside the reference curve.
Torch-free.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Sequence

from pifi_extract.errors import ConfigError

from .. import run_files
from ..families import FAMILIES
from ..report import GroupRow, RunRecord, load_record, summarize
from ..stats import mean_std, welch_difference
from .execute import seed_dir
from .grid import Arm, Run, Table
from .names import FAMILY_OF_KIND, Task, slug, task
from .numbers import METRICS, PaperNumber, paper_value

FORMATS = ("md", "csv")


@dataclass
class Results:
    """What is finished of a grid: per run, its seeds' records and their summary row."""

    records: dict[int, list[RunRecord]] = field(default_factory=dict)  # id(run) -> finished seeds
    rows: dict[int, GroupRow] = field(default_factory=dict)

    def of(self, run: Run) -> tuple[list[RunRecord], GroupRow | None]:
        return self.records.get(id(run), []), self.rows.get(id(run))


def collect(runs: Sequence[Run]) -> Results:
    """Load every finished seed of every run (unfinished ones are left out)."""
    results = Results()
    for run in runs:
        records = []
        for seed in run.seeds:
            folder = seed_dir(run, seed)
            if run_files.is_run_dir(folder) and (record := load_record(folder)) is not None:
                records.append(record)
        if records:
            results.records[id(run)] = records
            results.rows[id(run)] = summarize(records)[0]
    return results


def paper_metric(the_task: Task, metric: str) -> str:
    """The paper's upper row is EM where the task is SQuAD (Table 1)."""
    return "em" if the_task.kind == "qa" and metric == "accuracy" else metric


def _key(the_task: Task, metric: str, available: Sequence[str]) -> str | None:
    """The pifi metric key that stands for the paper's ``metric`` on this task (the first pifi computed)."""
    spec = METRICS[paper_metric(the_task, metric)]
    return next((k for k in spec.keys.get(FAMILY_OF_KIND[the_task.kind], ()) if k in available), None)


def _values(records: Sequence[RunRecord], key: str, test: str | None) -> list[float]:
    """Per seed, the metric on the run's test split, or on the --extra-test set ``test``."""
    if test is None:
        return [r.metrics[key] for r in records if key in r.metrics]
    return [r.extra[test][key] for r in records if key in r.extra.get(test, {})]


def _fmt(value: float, digits: int, sign: bool = False) -> str:
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


@dataclass
class Line:
    """A row of the rendered table: where it belongs, what it shows, and one text per column."""

    group: str
    row: str
    metric: str
    cells: list[str]


@dataclass
class Rendering:
    table: Table
    header: list[str]
    lines: list[Line]
    finished: int
    total: int
    notes: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def text(self, fmt: str = "md") -> str:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["table", *self.header])
            writer.writerows([[self.table.key, line.group, line.row, line.metric, *line.cells] for line in self.lines])
            return buffer.getvalue().rstrip("\n")
        out = [f"## {self.table.name} ({self.table.where}): {self.table.title}", ""]
        out += [f"- {note}" for note in self.notes] + [""]
        out += ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        previous = (None, None)
        for line in self.lines:
            group = line.group if (line.group, None) != (previous[0], None) else ""
            row = line.row if (line.group, line.row) != previous else ""
            previous = (line.group, line.row)
            out.append("| " + " | ".join([group, row, line.metric, *line.cells]).replace("\n", " ") + " |")
        out += [f"\n![{self.table.name}]({path})" for path in self.figures]
        return "\n".join(out)


@dataclass(frozen=True)
class _Row:
    """A rendered row group: SLM (or SLM + training set), the arm, its run per column and test name."""

    group: str
    slm: str
    arm: Arm
    train: str | None  # Table 3: the training set of the row
    runs: list[tuple[Run | None, str | None]]  # per column: the run, and the --extra-test name (None: its test)

    @property
    def label(self) -> str:
        return self.arm.row(self.slm)


def _rows(table: Table, runs: Sequence[Run]) -> list[_Row]:
    """The paper's rows: per SLM (Table 3: per SLM and training set), one per arm."""
    by_cell = {(r.slm, r.task.label, r.arm.label): r for r in runs}
    rows = []
    for slm in table.slms:
        for train in (table.tasks if table.cross_test else (None,)):
            for arm in table.arms:
                if train is None:
                    cells = [(by_cell.get((slm, t, arm.label)), None) for t in table.tasks]
                    rows.append(_Row(slm, slm, arm, None, cells))
                    continue
                run = by_cell.get((slm, train, arm.label))
                others = [t for t in table.tasks if t != train]
                cells = [(run, None if t == train or run is None else run.config.extra_test[others.index(t)])
                         for t in table.tasks]
                rows.append(_Row(f"{slm}, trained on {train}", slm, arm, train, cells))
    return rows


def _notes(table: Table, scale: str, stand_ins: Sequence[str], finished: int, total: int) -> list[str]:
    notes = [f"scale {scale}, {finished} of {total} seeds finished; cell: pifi mean ± std over the finished seeds "
             f"(n) / the {'reference' if table.figure else 'paper'}'s number"
             + ("" if table.figure else "; Δ: the first metric minus the named row's, p: Welch's t-test over seeds")]
    if scale != "paper":
        notes.append("smoke scale: a few examples and one epoch per run; pifi's numbers say nothing about the paper's")
    if stand_ins:
        notes.append("stand-ins: " + ", ".join(stand_ins))
    if table.note:
        notes.append(table.note)
    return notes


def _counts(runs: Sequence[Run], results: Results) -> tuple[int, int]:
    return sum(len(results.records.get(id(r), [])) for r in runs), sum(len(r.seeds) for r in runs)


def render_table(table: Table, runs: Sequence[Run], *, scale: str = "paper", stand_ins: Sequence[str] = ()
                 ) -> Rendering:
    """The table from whatever runs have finished; missing cells show ``-``."""
    results = collect(runs)
    finished, total = _counts(runs, results)
    rows = _rows(table, runs)
    lines: list[Line] = []
    for row in rows:
        for metric in table.metrics:
            cells = [_cell(table, row, column, metric, run, test, results)
                     for column, (run, test) in zip(table.tasks, row.runs)]
            if table.average:
                cells.append(_average(table, row, metric, results))
            lines.append(Line(row.group, row.label, _metric_label(table, metric, row, results), cells))
        if row.arm.versus:
            versus = row.arm.versus.replace("{slm}", row.slm)
            other = next((r for r in rows if r.group == row.group and r.label == versus), None)
            if other is None:
                continue
            cells = [_delta(table, row, other, column, mine, theirs, results)
                     for column, mine, theirs in zip(table.tasks, row.runs, other.runs)]
            lines.append(Line(row.group, row.label, f"Δ {METRICS[table.metrics[0]].label} vs {versus} (p)",
                              cells + ([""] if table.average else [])))
    header = ["SLM, training set" if table.cross_test else "SLM", "row", "metric", *table.tasks]
    header += ["Average"] if table.average else []
    return Rendering(table, header, lines, finished, total, _notes(table, scale, stand_ins, finished, total))


def _metric_label(table: Table, metric: str, row: _Row, results: Results) -> str:
    """The paper's metric name(s) on this row, and the pifi key(s) filling them (e.g. "F1 (macro_f1)")."""
    names = dict.fromkeys(METRICS[paper_metric(run.task, metric)].label for run, _ in row.runs if run)
    keys = set()
    for run, _ in row.runs:
        group = results.of(run)[1] if run else None
        if group is not None and (key := _key(run.task, metric, list(group.metrics))) is not None:
            keys.add(key)
    name = " / ".join(names) or METRICS[metric].label
    computed = {m.key for run, _ in row.runs if run for m in FAMILIES[FAMILY_OF_KIND[run.task.kind]].metrics.all}
    if not any(k in computed for run, _ in row.runs if run
               for k in METRICS[paper_metric(run.task, metric)].keys.get(FAMILY_OF_KIND[run.task.kind], ())):
        return f"{name} (not computed by pifi)"
    finished = [run for run, _ in row.runs if run and results.of(run)[1] is not None]
    if finished and not keys:  # e.g. Table 2's METEOR in a smoke run, which asks for no scoring model
        return f"{name} (not computed in these runs)"
    keys -= {n.lower() for n in names}
    return f"{name} ({', '.join(sorted(keys))})" if keys else name


def _paper(table: Table, row: _Row, label: str, column: str, metric: str) -> PaperNumber | None:
    trained = row.train or column
    return paper_value(table.key, row.slm, label, trained, paper_metric(task(trained), metric),
                       test=column if row.train else None)


def _seed_values(run: Run, test: str | None, metric: str, results: Results) -> list[float]:
    """The run's finished seeds' values of the paper's ``metric``, in the paper's unit."""
    records, group = results.of(run)
    key = _key(run.task, metric, list(group.metrics)) if group else None
    factor = METRICS[paper_metric(run.task, metric)].factor
    return [v * factor for v in _values(records, key, test)] if key else []


def _cell(table: Table, row: _Row, column: str, metric: str, run: Run | None, test: str | None,
          results: Results) -> str:
    paper = _paper(table, row, row.label, column, metric)
    shown = paper.value if paper else "-"
    values = _seed_values(run, test, metric, results) if run else []
    if not values:
        return f"- / {shown}"
    digits = METRICS[paper_metric(task(row.train or column), metric)].digits
    mean, std = mean_std(values)
    return f"{_fmt(mean, digits)} ± {_fmt(std, digits)} ({len(values)}) / {shown}"


def _average(table: Table, row: _Row, metric: str, results: Results) -> str:
    """Table 1's Average column: the mean over the columns of the per-column means (every column needed)."""
    paper = paper_value(table.key, row.slm, row.label, "Average", metric)
    shown = paper.value if paper else "-"
    means = []
    for run, test in row.runs:
        values = _seed_values(run, test, metric, results) if run else []
        if not values:
            return f"- / {shown}"
        means.append(fmean(values))
    return f"{_fmt(fmean(means), METRICS[metric].digits)} / {shown}"


def _delta(table: Table, row: _Row, other: _Row, column: str, mine: tuple[Run | None, str | None],
           theirs: tuple[Run | None, str | None], results: Results) -> str:
    """pifi's Δ of the first metric (p) / the paper's Δ (and its p-value where it gives one)."""
    metric = table.metrics[0]
    digits = METRICS[paper_metric(task(row.train or column), metric)].digits
    a, b = _paper(table, row, row.label, column, metric), _paper(table, other, other.label, column, metric)
    p = paper_value(table.key, row.slm, row.label, row.train or column, "p_value",
                    test=column if row.train else None)
    paper = _fmt(a.number - b.number, digits, sign=True) if a and b else "-"
    paper += f" (p {p.value})" if p else ""
    va = _seed_values(mine[0], mine[1], metric, results) if mine[0] else []
    vb = _seed_values(theirs[0], theirs[1], metric, results) if theirs[0] else []
    if not va or not vb:
        return f"- / {paper}"
    welch = welch_difference(va, vb)
    return f"{_fmt(fmean(va) - fmean(vb), digits, sign=True)} (p {welch.p_text() if welch else '-'}) / {paper}"


def render_figure(table: Table, runs: Sequence[Run], figure_dir: Path, *, scale: str = "paper",
                  stand_ins: Sequence[str] = ()) -> Rendering:
    """Per LLM: pifi's metric per layer position (mean ± std) beside the reference curve, and its plot."""
    from ..select.sweep import SweepResult, plot_sweep

    results = collect(runs)
    finished, total = _counts(runs, results)
    metric, the_task = table.metrics[0], task(table.tasks[0])
    spec = METRICS[metric]
    rendering = Rendering(table, ["LLM", "layer", "metric", the_task.label], [], finished, total,
                          _notes(table, scale, stand_ins, finished, total))
    base = next((r for r in runs if r.arm.method == "base"), None)
    base_values = _seed_values(base, None, metric, results) if base else []
    for llm in dict.fromkeys(r.arm.llm for r in runs if r.arm.llm):
        scores: dict[str, list[float]] = {}
        for run in (r for r in runs if r.arm.llm == llm):
            position = run.arm.layers[0] + 1  # the paper's 1-based layer
            reference = paper_value(table.key, run.slm, run.row, the_task.label, metric, layer=position)
            values = _seed_values(run, None, metric, results)
            if values:
                scores[str(position)] = values
            shown = f"{_fmt(fmean(values), spec.digits)} ± {_fmt(mean_std(values)[1], spec.digits)} ({len(values)})" \
                if values else "-"
            rendering.lines.append(Line(llm, str(position), spec.label,
                                        [f"{shown} / {reference.value if reference else '-'}"]))
        if not (scores and base_values):
            continue
        key = _key(the_task, metric, list(results.of(base)[1].metrics))
        unit = (METRICS[metric].factor or 1.0)
        # plot_sweep draws in the family metric's own points (accuracy ×100, BLEU-avg as is): the paper's units
        result = SweepResult(sorted(map(int, scores)), {"base": [v / unit for v in base_values],
                                                        **{k: [v / unit for v in vs] for k, vs in scores.items()}},
                             "test", figure_dir, str(key), FAMILY_OF_KIND[the_task.kind])
        reference = {int(n.layer): n.number for n in _references(table, llm)}
        try:
            rendering.figures.append(plot_sweep(result, figure_dir / f"{table.key}-{slug(llm)}.png", reference or None,
                                                "authors' logs" if table.key == "fig3" else "paper"))
        except ConfigError as err:
            rendering.notes.append(f"no plot: {err.message}")
    if base_values:
        mean, std = mean_std(base_values)
        rendering.lines.append(Line("base SLM", "-", spec.label,
                                    [f"{_fmt(mean, spec.digits)} ± {_fmt(std, spec.digits)} ({len(base_values)}) / -"]))
    return rendering


def _references(table: Table, llm: str) -> list[PaperNumber]:
    """The reference curve of one LLM (figure rows of numbers.csv)."""
    from .numbers import paper_numbers

    return [n for n in paper_numbers() if n.table == table.key and n.layer and n.row.startswith(f"+ PiFi ({llm},")]
