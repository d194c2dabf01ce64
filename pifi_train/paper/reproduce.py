"""``pifi paper``: list the tables, print a table's commands, run its grid, render it beside the paper.

:func:`grid` expands a table at a scale with the user's stand-ins; :func:`status` says whether pifi can run it
(what it lacks, one line each); :func:`commands` renders the grid as shell commands (``pifi extract`` once per
LLM, then one ``pifi train`` per run, through :func:`pifi_train.run_share.reproduce_command`); :func:`run_grid`
extracts the layers and runs every unfinished seed with a launcher; :func:`render` draws the table or figure
from whatever has finished. Torch-free until a job trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pifi_extract.errors import ConfigError

from ..families import FAMILIES, TASK_FAMILIES, family_for
from ..run_share import reproduce_command
from ..config import TrainConfig
from .execute import DONE, JobResult, check_same_run, extract_layers, job_state, jobs_of
from .grid import SCALES, Run, Scale, Table, plan
from .launch import LAUNCHERS, SlurmOptions, run_local, run_serial, submit_slurm
from .names import FAMILY_OF_KIND, task
from .numbers import METRICS
from .cost_tables import COST_TABLES, render_cost_table
from .render import Rendering, render_figure, render_table
from .stand_ins import StandIns, parse_stand_ins
from .tables import TABLES, table_keys

StepCallback = Callable[[int, int, str], None]


def default_output_dir(scale: str) -> Path:
    return Path("runs") / ("paper" if scale == "paper" else f"paper-{scale}")


def get_table(name: str) -> Table:
    """A table by ``1``..``20``, ``table 5``, ``fig2``, ``figure 3``; else one line listing them."""
    key = name.strip().lower().replace(" ", "")
    key = key.removeprefix("table").replace("figure", "fig")
    if key not in TABLES:
        raise ConfigError(f"unknown table {name!r}", f"the paper has tables {', '.join(table_keys())}")
    return TABLES[key]


def llm_depth(source: str) -> int:
    """Decoder layers of an LLM folder or Hub id (its config.json)."""
    from pifi_extract.architectures import arch_for_config
    from pifi_extract.extract import open_source
    from pifi_extract.plan import num_layers_of
    from pifi_extract.sources import read_json

    config = read_json(open_source(source), "config.json")
    return num_layers_of(config, arch_for_config(config))


def grid(table: Table, scale: str | Scale = "paper", stand_ins: Sequence[str] | StandIns = (),
         output_dir: str | Path | None = None, seeds: int | None = None) -> list[Run]:
    """The table's runs (see :func:`pifi_train.paper.grid.plan`)."""
    if isinstance(scale, str) and scale not in SCALES:
        raise ConfigError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
    parsed = stand_ins if isinstance(stand_ins, StandIns) else parse_stand_ins(stand_ins)
    name = scale if isinstance(scale, str) else scale.name
    return plan(table, scale, parsed, output_dir or default_output_dir(name), seeds, depth_of=llm_depth)


@dataclass(frozen=True)
class Status:
    """Whether pifi can run a table: what it lacks (``missing``: nothing runs) and the columns it cannot fill."""

    missing: tuple[str, ...]
    partly: tuple[str, ...]

    @property
    def runnable(self) -> bool:
        return not self.missing


def status(table: Table, runs: Sequence[Run]) -> Status:
    """What the table needs that this pifi lacks: its static needs, tasks pifi does not load, and any option
    value a family refuses (checked by the family's own validation)."""
    missing = list(table.needs)
    for run in runs:
        if run.config.task and run.config.task not in TASK_FAMILIES:
            missing.append(f"`--task {run.task.task}` (no such pifi task)")
        else:
            try:
                family_for(run.config).validate(run.config)
            except ConfigError as err:
                missing.append(err.message)
    partly = []
    for metric in table.metrics:
        for label in dict.fromkeys(t for t in table.tasks):
            family = FAMILIES[FAMILY_OF_KIND[task(label).kind]]
            keys = METRICS[metric].keys.get(family.name, ())
            if keys and not any(k in {m.key for m in family.metrics.all} for k in keys):
                partly.append(f"{METRICS[metric].label}")
    if partly:
        partly = [f"columns {', '.join(dict.fromkeys(partly))}"]
    return Status(tuple(dict.fromkeys(missing)), tuple(partly))


def _layer_dicts(run: Run) -> list[dict[str, Any]]:
    """The run's layers as reproduce_command prints a reference without a commit: the cache reference."""
    return [{"dtype": "keep", "commit": None, "local_path": layer.reference, "source": layer.source,
             "layer_index": layer.index} for layer in run.layers]


def commands(table: Table, runs: Sequence[Run], output_dir: str | Path) -> list[str]:
    """The shell commands of the grid: extraction once per LLM, one ``pifi train`` per run, the report."""
    if table.commands:
        return list(table.commands)
    lines = []
    by_source: dict[str, list[int]] = {}
    for run in runs:
        for layer in run.layers:
            if layer.index not in by_source.setdefault(layer.source, []):
                by_source[layer.source].append(layer.index)
    for source, indices in by_source.items():
        lines.append(f"pifi extract --llm {source} " + " ".join(f"--layer {i}" for i in indices))
    seen = set()
    for run in runs:
        if run.dir in seen:
            continue
        seen.add(run.dir)
        command = reproduce_command(run.config.to_dict(), _layer_dicts(run))
        lines.append(f"{command} --output-dir {run.dir}  # {run.row}, {run.task.label}")
    lines.append(f"pifi paper {table.key} --report --output-dir {output_dir}")
    return lines


@dataclass
class GridOutcome:
    """What a ``--run`` did: each job's result (skipped ones included)."""

    results: list[JobResult]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if r.status == "failed"]


def run_grid(table: Table, runs: Sequence[Run], *, launcher: str = "serial", workers: int | None = None,
             slurm: SlurmOptions | None = None, cache_dir: str | None = None, token: str | bool | None = None,
             progress: StepCallback | None = None, train_progress: Any = None) -> GridOutcome:
    """Extract what the grid needs, then run every seed not finished yet (finished ones are skipped; interrupted
    ones continue from their last epoch)."""
    if table.key in COST_TABLES:
        return GridOutcome([])  # nothing to train: render() counts the configurations
    state = status(table, runs)
    if not state.runnable:
        raise ConfigError(f"{table.name} needs {state.missing[0]}" + (f" (and {len(state.missing) - 1} more)"
                                                                       if len(state.missing) > 1 else ""),
                          "`pifi paper` lists what each table needs")
    if launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}")
    unique = list({run.dir: run for run in runs}.values())  # a run two arms share (Table 10's CLS) runs once
    artifacts = extract_layers(unique, cache_dir=cache_dir, token=token, progress=progress)  # cached: no reads
    all_jobs = jobs_of(unique, artifacts)
    finished = [job for job in all_jobs if job_state(job.dir, job.config["epochs"]) == DONE]
    for job in finished:  # a folder from another scale or stand-in is refused, never passed off as this grid's
        check_same_run(job.dir, TrainConfig.from_dict(job.config))
    pending = [job for job in all_jobs if job not in finished]
    skipped = [JobResult(job.name, "skipped") for job in finished]
    if launcher == "serial":
        done = run_serial(pending, progress, train_progress)
    elif launcher == "local":
        done = run_local(pending, workers, progress)
    else:
        out = unique[0].dir.parents[2] if unique else Path(".")
        done = submit_slurm(pending, out / "slurm", slurm or SlurmOptions(), progress)
    return GridOutcome(skipped + done)


def render(table: Table, runs: Sequence[Run], *, scale: str = "paper", stand_ins: Sequence[str] = (),
           figure_dir: str | Path | None = None) -> Rendering:
    """The table (or figure, plotted into ``figure_dir``) from the finished runs; Tables 16 and 20 counted."""
    if table.key in COST_TABLES:
        return render_cost_table(table)
    if table.figure:
        folder = Path(figure_dir or (runs[0].dir.parents[2] if runs else "."))
        folder.mkdir(parents=True, exist_ok=True)
        return render_figure(table, runs, folder, scale=scale, stand_ins=stand_ins)
    return render_table(table, runs, scale=scale, stand_ins=stand_ins)


def describe(table: Table, runs: Sequence[Run], state: Status) -> list[str]:
    """``pifi paper``'s lines for one table: what it compares, its grid, what it needs, whether pifi runs it."""
    lines = [f"{table.name} ({table.where}): {table.title}"]
    if runs:
        slms = dict.fromkeys(m for r in runs if r.arm.method != "llm" for m in [r.arm.slm or r.slm])
        llms = dict.fromkeys(f"{r.arm.llm}:{','.join(map(str, r.arm.layers))}" for r in runs if r.arm.llm)
        seeds = runs[0].config.seeds
        lines.append(f"  grid: {len({r.dir for r in runs})} runs × {seeds} seeds; SLMs {', '.join(slms)}; tasks "
                     f"{', '.join(table.tasks)}; layers {', '.join(llms) if len(llms) <= 4 else f'{len(llms)} (LLM:layer)'}")
    if state.missing:
        lines += [f"  needs {need}" for need in state.missing]
    elif table.key in COST_TABLES:
        lines.append(f"  no training: `pifi paper {table.key} --run` counts it with `pifi cost` (nothing downloaded)")
    else:
        lines.append("  pifi runs it" + (f"; not yet: {'; '.join(state.partly)}" if state.partly else ""))
    return lines
