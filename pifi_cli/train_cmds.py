"""`pifi train`, `pifi predict` and `pifi report`.

`pifi train`'s options carry the names of :class:`~pifi_train.config.TrainConfig` fields and take
their defaults from it; a new field becomes an option by adding one parameter here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pifi_train.config import TrainConfig

from .common import DeviceOpt, QuietOpt, dataclass_from_options, err_console, field_default, out_console, say

D = lambda name: field_default(TrainConfig, name)  # noqa: E731  (the library's default, written once)


def train(
    task: Annotated[Optional[str], typer.Option("--task", help="Built-in task: sst2, imdb, tweet_sentiment_binary, tweet_offensive, cola, mnli, snli (needs pifi[datasets]).")] = D("task"),
    train_file: Annotated[Optional[str], typer.Option("--train-file", help="Local training data: .csv, .tsv or .jsonl.")] = D("train_file"),
    validation_file: Annotated[Optional[str], typer.Option("--validation-file", help="Local validation data (default: a seeded split of --train-file).")] = D("validation_file"),
    test_file: Annotated[Optional[str], typer.Option("--test-file", help="Local test data (evaluated with the best epoch).")] = D("test_file"),
    task_type: Annotated[str, typer.Option("--task-type", help="auto (from --task; local files: classification), classification, qa or seq2seq.")] = D("task_type"),
    text_column: Annotated[str, typer.Option("--text-column", help="Column with the text.")] = D("text_column"),
    text_pair_column: Annotated[Optional[str], typer.Option("--text-pair-column", help="Column with the second text of a pair (e.g. hypothesis).")] = D("text_pair_column"),
    label_column: Annotated[str, typer.Option("--label-column", help="Column with the label (integers or names).")] = D("label_column"),
    validation_fraction: Annotated[float, typer.Option("--validation-fraction", help="Share of train held out when there is no validation file.")] = D("validation_fraction"),
    max_train_samples: Annotated[Optional[int], typer.Option("--max-train-samples", help="Use only the first N training examples.")] = D("max_train_samples"),
    max_eval_samples: Annotated[Optional[int], typer.Option("--max-eval-samples", help="Use only the first N validation/test examples.")] = D("max_eval_samples"),
    slm: Annotated[str, typer.Option("--slm", help="Small LM: Hub id or local folder (BERT, RoBERTa, DeBERTa-V3, ELECTRA, MiniLM, SmolLM2...).")] = D("slm"),
    layer_artifact: Annotated[Optional[list[str]], typer.Option("--layer-artifact", help="The LLM layer: artifact file from `pifi extract`, or a cache key (org/name:-1). Repeat to plug several layers in that order (same hidden size).")] = None,
    method: Annotated[str, typer.Option("--method", help="pifi (SLM + frozen LLM layer) or base (the SLM alone).")] = D("method"),
    plug: Annotated[str, typer.Option("--plug", help="cls: only the pooled vector goes through the layer (the paper); sequence: every token.")] = D("plug"),
    attention: Annotated[str, typer.Option("--attention", help="With --plug sequence: bidirectional or causal.")] = D("attention"),
    post_norm: Annotated[bool, typer.Option("--post-norm/--no-post-norm", help="Apply the LLM's final norm after the layer (off in the paper).")] = D("post_norm"),
    pooling: Annotated[str, typer.Option("--pooling", help="auto (first token for encoders, last non-pad token for decoders), first or last.")] = D("pooling"),
    dropout: Annotated[float, typer.Option("--dropout", help="Dropout of the classification head.")] = D("dropout"),
    epochs: Annotated[Optional[int], typer.Option("--epochs", help=f"Epochs (default {D('epochs')}; with --resume: extend the run to this many).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size per process (last partial batch dropped).")] = D("batch_size"),
    eval_batch_size: Annotated[Optional[int], typer.Option("--eval-batch-size", help="Evaluation batch size (default: --batch-size).")] = D("eval_batch_size"),
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = D("lr"),
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="Adam weight decay.")] = D("weight_decay"),
    max_length: Annotated[int, typer.Option("--max-length", help="Maximum tokens per example.")] = D("max_length"),
    label_smoothing: Annotated[float, typer.Option("--label-smoothing", help="Cross-entropy label smoothing.")] = D("label_smoothing"),
    grad_clip: Annotated[float, typer.Option("--grad-clip", help="Gradient-norm clipping.")] = D("grad_clip"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first run.")] = D("seed"),
    seeds: Annotated[int, typer.Option("--seeds", help="Repeat with this many seeds (seed, seed+1, ...): output-dir/seed-<s>/.")] = D("seeds"),
    device: DeviceOpt = D("device"),
    precision: Annotated[str, typer.Option("--precision", help="auto (CUDA: bf16, fp16 where unsupported; CPU: fp32), fp32, bf16, fp16.")] = D("precision"),
    num_workers: Annotated[int, typer.Option("--num-workers", help="DataLoader worker processes.")] = D("num_workers"),
    output_dir: Annotated[Optional[str], typer.Option("--output-dir", help="Run directory (default runs/<task>-<method>-<time>).")] = D("output_dir"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory.")] = D("overwrite"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output-dir from its last finished epoch (its saved options are used).")] = False,
    slm_random_init: Annotated[bool, typer.Option("--slm-random-init", hidden=True, help="Random SLM weights (benchmarks).")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Plug a frozen LLM layer into a small LM and fine-tune it on a classification task (the paper's recipe)."""
    from transformers.utils import logging as hf_logging

    from pifi_train.runner import resume_training, run_training

    options = dict(locals())
    hf_logging.disable_progress_bar()  # transformers' "Loading weights" bar; ours is the epoch bar
    with TrainProgress(quiet) as progress:
        if resume:
            if not output_dir:
                raise typer.BadParameter("--resume needs --output-dir (the run to continue)", param_hint="--resume")
            results = resume_training(Path(output_dir), epochs, progress)
        else:
            config = dataclass_from_options(
                TrainConfig, options, slm_pretrained=not slm_random_init,
                layer_artifact=list(layer_artifact or []) or None, epochs=D("epochs") if epochs is None else epochs)
            results = run_training(config, progress)
    if results and is_main_process():
        _print_results(results)


def is_main_process() -> bool:
    """Rank 0 of a torchrun job (or a single process): the one that prints."""
    return os.environ.get("RANK", "0") == "0"


class TrainProgress:
    """The library's progress callback rendered with rich: a bar per epoch (loss, examples/s), a line per epoch."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or not is_main_process()
        self.live = not self.quiet and sys.stderr.isatty()
        self._bar = None
        self._task = None

    def __enter__(self) -> "TrainProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __call__(self, event) -> None:  # type: ignore[no-untyped-def]
        if self.quiet:
            return
        if event.kind == "epoch_start" and self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]}  {task.fields[rate]} ex/s"),
                                 TimeRemainingColumn(), console=err_console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(f"seed {event.seed} epoch {event.epoch}/{event.epochs}",
                                            total=event.steps, loss="-", rate="-")
        elif event.kind == "step" and self._bar is not None:
            self._bar.update(self._task, completed=event.step, loss=f"{event.loss:.4f}",
                             rate=f"{event.examples_per_second:.0f}")
        elif event.kind == "epoch_end":
            self._close()
            val = event.metrics["validation"]
            best = "  [green]best[/]" if event.metrics["best"] else ""
            err_console.print(f"seed {event.seed} epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  "
                              f"val acc {100 * val['accuracy']:.2f}  val F1 {100 * val['macro_f1']:.2f}  "
                              f"{event.examples_per_second:.0f} ex/s{best}", highlight=False)


def _print_results(results: list) -> None:
    from rich.table import Table

    from pifi_train.runner import summarize_seeds

    table = Table(title="pifi train: best epoch per seed (accuracy / macro-F1, %)", title_justify="left")
    for col in ("seed", "best epoch", "val acc", "val F1", "test acc", "test F1", "run"):
        table.add_column(col, justify="left" if col == "run" else "right")
    pct = lambda split, key: f"{100 * split[key]:.2f}" if split else "-"  # noqa: E731
    for r in results:
        final = r.metrics["final"]
        table.add_row(str(r.seed), str(final["best_epoch"]), pct(final["validation"], "accuracy"),
                      pct(final["validation"], "macro_f1"), pct(final["test"], "accuracy"), pct(final["test"], "macro_f1"),
                      str(r.run_dir))
    if len(results) > 1:
        summary = summarize_seeds(results)
        cell = lambda key: (f"{100 * summary[key]['mean']:.2f} ± {100 * summary[key]['std']:.2f}" if key in summary else "-")  # noqa: E731
        table.add_row("mean ± std", "", cell("validation_accuracy"), cell("validation_macro_f1"), cell("test_accuracy"),
                      cell("test_macro_f1"), str(results[0].run_dir.parent))
    out_console.print(table)


def predict(
    run_dir: Annotated[str, typer.Option("--run-dir", help="A finished run directory (one seed).")],
    text: Annotated[Optional[list[str]], typer.Option("--text", help="Text to classify (repeat for several).")] = None,
    text_pair: Annotated[Optional[list[str]], typer.Option("--text-pair", help="Second text of each pair (runs trained on pairs).")] = None,
    file: Annotated[Optional[str], typer.Option("--file", help="Texts to classify: .txt (one per line) or .csv/.tsv/.jsonl with the run's columns; accuracy is printed when labels are present.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write predictions as JSONL here instead of printing them.")] = None,
    layer_artifact: Annotated[Optional[list[str]], typer.Option("--layer-artifact", help="The run's artifact if it moved (its sha256 must match); repeat for a run with several layers, in order.")] = None,
    device: DeviceOpt = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts per forward pass.")] = 64,
) -> None:
    """Classify texts with a trained run (checkpoint + the artifact it was trained with)."""
    import json

    from pifi_train.predict import accuracy, load_run, predict as run_predict, read_inputs

    if (file is None) == (not text):
        raise typer.BadParameter("pass --text (one or more) or --file", param_hint="--text/--file")
    if output is not None:
        _check_predict_output(Path(output))
    loaded = load_run(run_dir, device=device, layer_artifact=list(layer_artifact or []) or None)
    labels = None
    if file is not None:
        texts, pairs, labels = read_inputs(file, loaded)
    else:
        texts, pairs = list(text or []), (list(text_pair) if text_pair else None)
    predictions = run_predict(loaded, texts, pairs, batch_size=batch_size)
    lines = [json.dumps({"text": t, "label": p.label, "probabilities": p.probabilities}) for t, p in zip(texts, predictions)]
    if output is not None:
        Path(output).write_text("".join(line + "\n" for line in lines))
        say(f"wrote {len(lines)} predictions to {output}")
    else:
        for t, p in zip(texts, predictions):
            probs = "  ".join(f"{name} {value:.4f}" for name, value in p.probabilities.items())
            typer.echo(f"{p.label}\t{probs}\t{t}")
    if labels is not None:
        say(f"accuracy {100 * accuracy(predictions, labels, loaded.label_names):.2f}% on {len(labels)} labelled examples")


def report(
    run_dirs: Annotated[list[str], typer.Argument(help="Run directories, seed sweeps, or folders holding them.")],
    plot: Annotated[Optional[str], typer.Option("--plot", help="Where to write the validation-curve PNG (default pifi-report.png; needs matplotlib).")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not draw the PNG.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Compare runs: base vs pifi, mean ± std over seeds, validation curves."""
    import dataclasses
    import json

    from rich.table import Table

    from pifi_train.report import GROUP_FIELDS, build_report

    result = build_report(run_dirs, None if no_plot else Path(plot or "pifi-report.png"), plot_required=plot is not None)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in result.rows], indent=2))
        return
    table = Table(title="pifi report (accuracy / macro-F1 in %, mean ± std over seeds)", title_justify="left")
    for col in (*GROUP_FIELDS, "split", "seeds", "accuracy", "macro-F1", "Δ acc vs base"):
        table.add_column(col, justify="right" if col in ("seeds", "accuracy", "macro-F1", "Δ acc vs base") else "left")
    for row in result.rows:
        delta = f"{100 * row.delta_vs_base:+.2f}" if row.delta_vs_base is not None else ""
        table.add_row(*row.group, row.split, str(len(row.seeds)), f"{100 * row.accuracy_mean:.2f} ± {100 * row.accuracy_std:.2f}",
                      f"{100 * row.macro_f1_mean:.2f} ± {100 * row.macro_f1_std:.2f}", delta)
    out_console.print(table)
    for skipped in result.skipped:
        out_console.print(f"[yellow]unfinished, skipped:[/] {skipped}", highlight=False, soft_wrap=True)
    for note in result.notes:
        out_console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if result.plot is not None:
        say(f"validation curves: {result.plot}")


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(predict)
    app.command()(report)


def _check_predict_output(path: Path) -> None:
    """Refuse ``predict -o`` onto a folder or into a missing folder, before any prediction runs."""
    from pifi_extract.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"-o {path} is a folder", "pass a file name, e.g. -o predictions.jsonl")
    if not path.parent.is_dir():
        raise ConfigError(f"-o {path}: the folder {path.parent} does not exist", "create it first, or choose another -o")

