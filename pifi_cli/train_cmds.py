"""`pifi train`, `pifi predict` and `pifi report`.

`pifi train`'s options carry the names of :class:`~pifi_train.config.TrainConfig` fields and take
their defaults from it; a new field becomes an option by adding one parameter here.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pifi_train.config import TrainConfig

from .common import DeviceOpt, QuietOpt, dataclass_from_options, err_console, field_default, out_console, say

D = lambda name: field_default(TrainConfig, name)  # noqa: E731  (the library's default, written once)


def train(
    ctx: typer.Context,
    config_file: Annotated[Optional[str], typer.Option("--config", help="Options from a .yaml/.json file (TrainConfig names; a run's config.json re-runs it); flags given here override it.")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="Built-in task: sst2, imdb, tweet_sentiment_binary, tweet_offensive, cola, mnli, snli; QA: squad, squad_v2 (needs pifi[datasets]).")] = D("task"),
    train_file: Annotated[Optional[str], typer.Option("--train-file", help="Local training data: .csv, .tsv or .jsonl (QA: SQuAD .json or .jsonl with --task-type qa).")] = D("train_file"),
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
    method: Annotated[str, typer.Option("--method", help="pifi (SLM + frozen LLM layer), base (the SLM alone) or lora (the SLM with LoRA adapters; pifi[lora]).")] = D("method"),
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
    # ablations and paper-faithful data (TrainConfig's block of the same name)
    layer_init: Annotated[str, typer.Option("--layer-init", help="artifact, or random: the artifact's shape and config with its architecture's own init, seeded (Table 5, PiFi-Random).")] = D("layer_init"),
    train_layer: Annotated[bool, typer.Option("--train-layer", help="Train the LLM layer too, in fp32 (Table 11); the checkpoint then holds the layer.")] = D("train_layer"),
    lora_r: Annotated[int, typer.Option("--lora-r", help="--method lora: LoRA rank (Table 18).")] = D("lora_r"),
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", help="--method lora: LoRA alpha.")] = D("lora_alpha"),
    lora_dropout: Annotated[float, typer.Option("--lora-dropout", help="--method lora: LoRA dropout.")] = D("lora_dropout"),
    lora_targets: Annotated[Optional[str], typer.Option("--lora-targets", help="--method lora: comma-separated module names (default: peft's for the SLM).")] = D("lora_targets"),
    train_fraction: Annotated[Optional[float], typer.Option("--train-fraction", help="Train on a seeded, stratified share of the training set (Table 19).")] = D("train_fraction"),
    extra_test: Annotated[Optional[list[str]], typer.Option("--extra-test", help="Also test the best epoch on this built-in task or local file (repeatable; labels matched by name; Table 3).")] = None,
    clean_text: Annotated[str, typer.Option("--clean-text", help="auto (html for the paper's classification tasks, none for entailment and local files), html (the authors' BeautifulSoup cleaning; pifi[paper]) or none.")] = D("clean_text"),
    split_seed: Annotated[int, typer.Option("--split-seed", help="Seed of the train/validation split: the same for every --seed, as the paper.")] = D("split_seed"),
    # extractive QA (--task squad / squad_v2, or --task-type qa with SQuAD JSON/JSONL files)
    protocol: Annotated[str, typer.Option("--protocol", help="QA: standard (384 tokens, stride windows, the official dev set as test) or paper (the authors' split, 100 tokens, no stride, also their token-span EM/F1).")] = D("protocol"),
    doc_stride: Annotated[int, typer.Option("--doc-stride", help="QA: tokens of overlap between the windows of a long context.")] = D("doc_stride"),
    max_answer_length: Annotated[int, typer.Option("--max-answer-length", help="QA: longest answer in tokens.")] = D("max_answer_length"),
    n_best: Annotated[int, typer.Option("--n-best", help="QA: start and end candidates per window.")] = D("n_best"),
    null_score_threshold: Annotated[float, typer.Option("--null-score-threshold", help="QA v2: answer nothing when the no-answer score beats the best span by more than this.")] = D("null_score_threshold"),
    # sequence-to-sequence (--task-type seq2seq, multi30k, cnn_dailymail)
    source_column: Annotated[str, typer.Option("--source-column", help="Seq2seq: column with the source text.")] = D("source_column"),
    target_column: Annotated[str, typer.Option("--target-column", help="Seq2seq: column with the target text.")] = D("target_column"),
    source_prefix: Annotated[Optional[str], typer.Option("--source-prefix", help="Seq2seq: text put before every source (default: the built-in task's T5 prefix for T5, else none).")] = D("source_prefix"),
    max_target_length: Annotated[int, typer.Option("--max-target-length", help="Seq2seq: maximum target tokens in training.")] = D("max_target_length"),
    num_beams: Annotated[int, typer.Option("--num-beams", help="Seq2seq decoding (both arms, model.generate): beams.")] = D("num_beams"),
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Seq2seq decoding: most generated tokens.")] = D("max_new_tokens"),
    length_penalty: Annotated[float, typer.Option("--length-penalty", help="Seq2seq decoding: beam length penalty.")] = D("length_penalty"),
    no_repeat_ngram_size: Annotated[int, typer.Option("--no-repeat-ngram-size", help="Seq2seq decoding: forbid repeating n-grams of this size (0: off).")] = D("no_repeat_ngram_size"),
    select_by: Annotated[str, typer.Option("--select-by", help="Seq2seq best epoch: loss (validation loss, the authors), bleu or rougeL.")] = D("select_by"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output-dir from its last finished epoch (its saved options are used).")] = False,
    report_to: Annotated[Optional[list[str]], typer.Option("--report-to", help="Experiment trackers (as transformers' report_to): none, all, tensorboard, wandb, mlflow; repeatable.")] = None,
    slm_random_init: Annotated[bool, typer.Option("--slm-random-init", hidden=True, help="Random SLM weights (benchmarks).")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Plug a frozen LLM layer into a small LM and fine-tune it: classification, extractive QA or seq2seq (the paper's recipe)."""
    from transformers.utils import logging as hf_logging

    from pifi_train.runner import resume_training, run_training

    options = dict(locals())
    options.pop("ctx")
    hf_logging.disable_progress_bar()  # transformers' "Loading weights" bar; ours is the epoch bar
    with TrainProgress(quiet) as progress:
        if resume:
            if not output_dir:
                raise typer.BadParameter("--resume needs --output-dir (the run to continue)", param_hint="--resume")
            results = resume_training(Path(output_dir), epochs, progress)
        else:
            results = run_training(_train_config(ctx, options), progress)
    if results and is_main_process():
        _print_results(results)


def _train_config(ctx: typer.Context, options: dict) -> TrainConfig:
    """TrainConfig from the options (and the --config file, which only the flags actually given override)."""
    converted = {**options, "slm_pretrained": not options["slm_random_init"],
                 "layer_artifact": list(options["layer_artifact"] or []) or None,
                 "extra_test": list(options["extra_test"] or []) or None,
                 "report_to": list(options["report_to"] or []) or D("report_to"),
                 "epochs": D("epochs") if options["epochs"] is None else options["epochs"]}
    if options["config_file"] is None:
        return dataclass_from_options(TrainConfig, converted)
    from pifi_train.config_file import config_from_file

    # typer vendors click: compare the ParameterSource by name
    given = {name for name in options
             if getattr(ctx.get_parameter_source(name), "name", "") in ("COMMANDLINE", "ENVIRONMENT")}
    if "slm_random_init" in given:
        given.add("slm_pretrained")
    names = set(field.name for field in dataclasses.fields(TrainConfig))
    return config_from_file(options["config_file"], {k: converted[k] for k in given & names})


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
            (first, second), (name, _) = metric_keys(val), metric_labels(val)
            scores = (f"val loss {val['loss']:.4f}  val BLEU {val['bleu']:.2f}  val ROUGE-L {val['rougeL']:.2f}"
                      if "bleu" in val else f"val {name} {100 * val[first]:.2f}  val F1 {100 * val[second]:.2f}")
            err_console.print(f"seed {event.seed} epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  {scores}  "
                              f"{event.examples_per_second:.0f} ex/s{best}", highlight=False)


def metric_keys(metrics: dict) -> tuple[str, str]:
    """The two headline metrics of a split: (exact_match, f1) for QA runs, else (accuracy, macro_f1)."""
    return ("exact_match", "f1") if "exact_match" in metrics else ("accuracy", "macro_f1")


def metric_labels(metrics: dict) -> tuple[str, str]:
    return ("EM", "F1") if "exact_match" in metrics else ("acc", "F1")


def _print_seq2seq_results(results: list) -> None:
    from rich.table import Table

    from pifi_train.seq2seq.runner import summarize_seeds

    table = Table(title="pifi train: best epoch per seed (sacreBLEU, BLEU-avg 0..1, ROUGE-L %)", title_justify="left")
    for col in ("seed", "best epoch", "val BLEU", "test BLEU", "test BLEU-avg", "test ROUGE-L", "run"):
        table.add_column(col, justify="left" if col == "run" else "right")
    num = lambda split, key, f=".2f": format(split[key], f) if split else "-"  # noqa: E731
    for r in results:
        final = r.metrics["final"]
        table.add_row(str(r.seed), str(final["best_epoch"]), num(final["validation"], "bleu"), num(final["test"], "bleu"),
                      num(final["test"], "bleu_avg", ".4f"), num(final["test"], "rougeL"), str(r.run_dir))
    if len(results) > 1:
        summary = summarize_seeds(results)
        cell = lambda key, f=".2f": (f"{format(summary[key]['mean'], f)} ± {format(summary[key]['std'], f)}" if key in summary else "-")  # noqa: E731
        table.add_row("mean ± std", "", cell("validation_bleu"), cell("test_bleu"), cell("test_bleu_avg", ".4f"),
                      cell("test_rougeL"), str(results[0].run_dir.parent))
    out_console.print(table)


def _print_results(results: list) -> None:
    from rich.table import Table

    if "bleu" in results[0].metrics["final"]["validation"]:
        return _print_seq2seq_results(results)

    from pifi_train.runner import summarize_seeds

    validation = results[0].metrics["final"]["validation"]
    (first, second), (name, name2) = metric_keys(validation), metric_labels(validation)
    title = "EM / F1" if first == "exact_match" else "accuracy / macro-F1"
    table = Table(title=f"pifi train: best epoch per seed ({title}, %)", title_justify="left")
    for col in ("seed", "best epoch", f"val {name}", f"val {name2}", f"test {name}", f"test {name2}", "run"):
        table.add_column(col, justify="left" if col == "run" else "right")
    pct = lambda split, key: f"{100 * split[key]:.2f}" if split else "-"  # noqa: E731
    for r in results:
        final = r.metrics["final"]
        table.add_row(str(r.seed), str(final["best_epoch"]), pct(final["validation"], first),
                      pct(final["validation"], second), pct(final["test"], first), pct(final["test"], second),
                      str(r.run_dir))
    if len(results) > 1:
        summary = summarize_seeds(results, (first, second))
        cell = lambda key: (f"{100 * summary[key]['mean']:.2f} ± {100 * summary[key]['std']:.2f}" if key in summary else "-")  # noqa: E731
        table.add_row("mean ± std", "", cell(f"validation_{first}"), cell(f"validation_{second}"), cell(f"test_{first}"),
                      cell(f"test_{second}"), str(results[0].run_dir.parent))
    out_console.print(table)
    for r in results:  # --extra-test sets (domain shift)
        for name, split in (r.metrics["final"].get("extra_tests") or {}).items():
            say(f"seed {r.seed} extra test {name}: acc {100 * split['accuracy']:.2f}  F1 {100 * split['macro_f1']:.2f}")


def register(app: typer.Typer) -> None:
    app.command()(train)
