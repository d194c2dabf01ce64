"""`pifi train`: every option is a field of pifi_train.options (help and default written there, once).

The run's progress (a bar per epoch and per evaluation, a line per epoch) and the results table render
the run's family's own metrics (pifi_train.families: accuracy / macro-F1, EM / F1, BLEU / ROUGE...).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pifi_extract.errors import ConfigError
from pifi_train.config import TrainConfig
from pifi_train.run_files import check_output_dir
from pifi_train.options import GROUPS

from .common import QuietOpt, err_console, out_console, say
from .dataclass_options import values_for, with_dataclass_options


@with_dataclass_options(*GROUPS, defaults={"epochs": None})
def train(
    ctx: typer.Context,
    config_file: Annotated[Optional[str], typer.Option("--config", help="Options from a .yaml/.json file (TrainConfig names; a run's config.json re-runs it); flags given here override it.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output-dir from its last finished epoch (its saved options are used; --epochs extends it).")] = False,
    quiet: QuietOpt = False,
    **options: Any,
) -> None:
    """Plug a frozen LLM layer into a small LM and fine-tune it: classification, extractive QA or seq2seq (the paper's recipe)."""
    from transformers.utils import logging as hf_logging

    from pifi_train.runner import resume_training, run_training

    hf_logging.disable_progress_bar()  # transformers' "Loading weights" bar; ours is the epoch bar
    with TrainProgress(quiet) as progress:
        if resume:
            if not options["output_dir"]:
                raise typer.BadParameter("--resume needs --output-dir (the run to continue)", param_hint="--resume")
            check_output_dir(Path(options["output_dir"]), overwrite=False, resume=True)
            others = sorted(_given(ctx, options) - {"output_dir", "epochs"}) + (["config"] if config_file else [])
            if others:
                raise ConfigError(f"--resume continues the run with its saved options; --{others[0].replace('_', '-')} "
                                  "would be ignored", "drop it (--epochs extends the run), or start a new run")
            results = resume_training(Path(options["output_dir"]), options["epochs"], progress)
        else:
            results = run_training(train_config(ctx, config_file, options), progress)
    if results and is_main_process():
        print_results(results)


def train_config(ctx: typer.Context, config_file: Optional[str], options: dict[str, Any]) -> TrainConfig:
    """TrainConfig from the options (and the --config file, which only the options actually given override)."""
    if options.get("epochs") is None:
        options = {k: v for k, v in options.items() if k != "epochs"}  # the library's default (or the file's)
    values = values_for(TrainConfig, options)
    if config_file is None:
        return TrainConfig(**values)
    from pifi_train.config_file import config_from_file

    return config_from_file(config_file, {k: values[k] for k in _given(ctx, values)})


def _given(ctx: typer.Context, names: Any) -> set[str]:
    """The options typed on the command line (or set by environment), not left at their defaults."""
    # typer vendors click: compare the ParameterSource by name
    return {name for name in names if getattr(ctx.get_parameter_source(name), "name", "") in ("COMMANDLINE", "ENVIRONMENT")}


def is_main_process() -> bool:
    """Rank 0 of a torchrun job (or a single process): the one that prints."""
    return os.environ.get("RANK", "0") == "0"


class TrainProgress:
    """The library's progress callback rendered with rich: a bar per epoch and per evaluation, a line per epoch."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or not is_main_process()
        self.live = not self.quiet and sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self.family: Any = None

    def __enter__(self) -> "TrainProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _open(self, description: str, total: int, fields: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._close()
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(fields),
                             TimeRemainingColumn(), console=err_console, transient=True)
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, loss="-", rate="-")

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if event.kind == "run_start" and event.run_dir:
            self.family = _run_family(event.run_dir)
        elif event.kind == "epoch_start" and self.live:
            self._open(f"seed {event.seed} epoch {event.epoch}/{event.epochs}", event.steps,
                       "loss {task.fields[loss]}  {task.fields[rate]} ex/s")
        elif event.kind == "step" and self._bar is not None:
            self._bar.update(self._task, completed=event.step, loss=f"{event.loss:.4f}",
                             rate=f"{event.examples_per_second:.0f}")
        elif event.kind == "eval_step" and self.live:
            if event.step == 1 or self._bar is None:
                self._open(f"seed {event.seed} evaluating {event.split}", event.steps, "")
            self._bar.update(self._task, completed=event.step)
        elif event.kind == "epoch_end":
            self._close()
            validation = event.metrics["validation"]
            best = "  [green]best[/]" if event.metrics["best"] else ""
            err_console.print(f"seed {event.seed} epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  "
                              f"{_scores(self.family, validation, 'val ')}  {event.examples_per_second:.0f} ex/s{best}",
                              highlight=False)
        elif event.kind == "run_end":
            self._close()


def _run_family(run_dir: str) -> Any:
    from pifi_extract.errors import PifiError
    from pifi_train.run_files import CONFIG, read_json
    from pifi_train.families import family_of_record

    try:
        return family_of_record(read_json(Path(run_dir) / CONFIG))
    except (PifiError, OSError):  # the epoch line then shows the loss only
        return None


def _scores(family: Any, split: dict[str, Any] | None, prefix: str = "") -> str:
    """``prefix``+label value pairs of the family's headline metrics, and the loss when the split has one."""
    if not split or family is None:
        return "-"
    parts = [f"{prefix}{m.label} {m.show(split[m.key])}" for m in family.metrics.headline if m.key in split]
    if "loss" in split:
        parts.insert(0, f"{prefix}loss {split['loss']:.4f}")
    return "  ".join(parts)


def print_results(results: list) -> None:
    """The best epoch of each seed (validation and test), mean ± std over seeds, each --extra-test set."""
    from rich.table import Table

    from pifi_train.families import family_of_record
    from pifi_train.run_files import CONFIG, read_json
    from pifi_train.runner import summarize_seeds

    family = family_of_record(read_json(results[0].run_dir / CONFIG))
    headline = family.metrics.headline
    units = "%" if headline[0].percent else "points"
    table = Table(title=f"pifi train ({family.name}): best epoch per seed ({', '.join(m.label for m in headline)}; "
                        f"{units})", title_justify="left")
    for col in ("seed", "best epoch", *[f"val {m.label}" for m in headline], *[f"test {m.label}" for m in headline],
                "run"):
        table.add_column(col, justify="left" if col == "run" else "right")
    cell = lambda split, m: m.show(split[m.key]) if split and split.get(m.key) is not None else "-"  # noqa: E731
    for r in results:
        final = r.metrics["final"]
        table.add_row(str(r.seed), str(final["best_epoch"]), *[cell(final["validation"], m) for m in headline],
                      *[cell(final.get("test"), m) for m in headline], str(r.run_dir))
    if len(results) > 1:
        summary = summarize_seeds(results, family)
        both = lambda key, m: (f"{m.show(summary[key]['mean'])} ± {m.show(summary[key]['std'])}"  # noqa: E731
                               if key in summary else "-")
        table.add_row("mean ± std", "", *[both(f"validation_{m.key}", m) for m in headline],
                      *[both(f"test_{m.key}", m) for m in headline], str(results[0].run_dir.parent))
    out_console.print(table)
    for r in results:  # --extra-test sets (domain shift), and the paper-compatible variants
        final = r.metrics["final"]
        for name, split in (final.get("extra_tests") or {}).items():
            say(f"seed {r.seed} extra test {name}: {_scores(family, split)}")
        variants = [f"{m.label} {m.show(final['test'][m.key])}" for m in family.metrics.variants
                    if final.get("test") and final["test"].get(m.key) is not None]
        if variants:
            say(f"seed {r.seed} test, paper-compatible: {'  '.join(variants)}")


def register(app: typer.Typer) -> None:
    app.command()(train)
