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

from .common import DeviceOpt, QuietOpt, TokenOpt, dataclass_from_options, err_console, field_default, out_console, say

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


def predict(
    run_dir: Annotated[str, typer.Option("--run-dir", help="A finished run directory (one seed), or hf://ORG/REPO[@REV] pushed with `pifi push`.")],
    text: Annotated[Optional[list[str]], typer.Option("--text", help="Text to classify (repeat for several).")] = None,
    text_pair: Annotated[Optional[list[str]], typer.Option("--text-pair", help="Second text of each pair (runs trained on pairs).")] = None,
    question: Annotated[Optional[list[str]], typer.Option("--question", help="QA runs: a question (repeat; one --context each).")] = None,
    context: Annotated[Optional[list[str]], typer.Option("--context", help="QA runs: the passage holding the answer of each --question.")] = None,
    file: Annotated[Optional[str], typer.Option("--file", help="Texts to classify: .txt (one per line) or .csv/.tsv/.jsonl with the run's columns; accuracy is printed when labels are present.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write predictions as JSONL here instead of printing them.")] = None,
    layer_artifact: Annotated[Optional[list[str]], typer.Option("--layer-artifact", help="The run's artifact if it moved (its sha256 must match); repeat for a run with several layers, in order.")] = None,
    device: DeviceOpt = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts per forward pass.")] = 64,
    token: TokenOpt = None,
) -> None:
    """Use a trained run: classify texts, answer --question/--context (QA runs) or generate (seq2seq runs)."""
    import json

    from pifi_train.families import run_family
    from pifi_train.predict import accuracy, load_run, predict as run_predict, read_inputs

    if run_family(run_dir) == "qa":
        _predict_qa(run_dir, list(question or []), list(context or []), output, layer_artifact, device, batch_size)
        return
    if question or context:
        raise typer.BadParameter("--question/--context need a QA run (pifi train --task squad ...)", param_hint="--question")

    if (file is None) == (not text):
        raise typer.BadParameter("pass --text (one or more) or --file", param_hint="--text/--file")
    if run_family(run_dir) == "seq2seq":
        return _predict_seq2seq(run_dir, text, file, output, layer_artifact, device, batch_size)
    if output is not None:
        _check_predict_output(Path(output))
    loaded = load_run(run_dir, device=device, layer_artifact=list(layer_artifact or []) or None, token=token)
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


def _predict_qa(run_dir: str, questions: list[str], contexts: list[str], output: Optional[str],
                layer_artifact: Optional[list[str]], device: str, batch_size: int) -> None:
    import json

    from pifi_train.qa.predict import answer, load_qa_run

    if not questions or len(questions) != len(contexts):
        raise typer.BadParameter("a QA run answers --question Q --context C (one --context per --question)",
                                 param_hint="--question/--context")
    loaded = load_qa_run(run_dir, device=device, layer_artifact=list(layer_artifact or []) or None)
    answers = answer(loaded, questions, contexts, batch_size=batch_size)
    lines = [json.dumps({"question": q, "answer": a.text, "score": a.score}) for q, a in zip(questions, answers)]
    if output is not None:
        Path(output).write_text("".join(line + "\n" for line in lines))
        say(f"wrote {len(lines)} answers to {output}")
    else:
        for q, a in zip(questions, answers):
            typer.echo(f"{a.text}\t{a.score:.4f}\t{q}")


def _predict_seq2seq(run_dir: str, text: Optional[list[str]], file: Optional[str], output: Optional[str],
                     layer_artifact: Optional[list[str]], device: str, batch_size: int) -> None:
    """Generate with a seq2seq run: --text, or --file (.txt lines, or the run's source column; BLEU when targets)."""
    import json

    from pifi_train.data import read_table
    from pifi_train.seq2seq.metrics import generation_metrics
    from pifi_train.seq2seq.predict import generate, load_seq2seq_run

    loaded = load_seq2seq_run(run_dir, device=device, layer_artifact=list(layer_artifact or []) or None)
    references = None
    if file is None:
        texts = list(text or [])
    elif Path(file).suffix.lower() == ".txt":
        texts = [line for line in Path(file).read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        rows = read_table(Path(file))
        source, target = loaded.options.source_column, loaded.options.target_column
        if source not in rows[0]:
            raise typer.BadParameter(f"{file} has no column {source!r}", param_hint="--file")
        texts = [str(r[source]) for r in rows]
        references = [str(r[target]) for r in rows] if target in rows[0] else None
    hypotheses = generate(loaded, texts, batch_size=batch_size)
    lines = [json.dumps({"source": t, "hypothesis": h}, ensure_ascii=False) for t, h in zip(texts, hypotheses)]
    if output is not None:
        Path(output).write_text("".join(line + "\n" for line in lines))
        say(f"wrote {len(lines)} generations to {output}")
    else:
        for t, h in zip(texts, hypotheses):
            typer.echo(f"{h}\t{t}")
    if references is not None:
        scores = generation_metrics(hypotheses, references)
        say(f"BLEU {scores['bleu']:.2f}  BLEU-avg {scores['bleu_avg']:.4f}  ROUGE-L {scores['rougeL']:.2f} "
            f"on {len(references)} references")


def report(
    run_dirs: Annotated[list[str], typer.Argument(help="Run directories, seed sweeps, or folders holding them.")],
    plot: Annotated[Optional[str], typer.Option("--plot", help="Where to write the validation-curve PNG (default pifi-report.png; needs matplotlib).")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not draw the PNG.")] = False,
    output_format: Annotated[Optional[str], typer.Option("--format", help="Print the rows as md, csv, latex or json instead of a table.")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Also a paired bootstrap over test examples with N resamples (vs the base, runs paired by seed).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Compare runs: base vs pifi, mean ± std over seeds, Welch p-value and 95 % CI, extra test sets, curves."""
    from rich.table import Table

    from pifi_extract.errors import ConfigError
    from pifi_train.report import FORMATS, GROUP_FIELDS, build_report, render, table_cells

    fmt = "json" if as_json else output_format
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    if bootstrap < 0:
        raise ConfigError(f"--bootstrap must be at least 0, got {bootstrap}")
    result = build_report(run_dirs, None if no_plot else Path(plot or "pifi-report.png"),
                          plot_required=plot is not None, bootstrap=bootstrap)
    if fmt is not None:
        typer.echo(render(result.rows, fmt))
        return
    header, cells = table_cells([r for r in result.rows if not r.generation])
    table = Table(title="pifi report (accuracy / macro-F1 in %, QA rows: EM / F1; mean ± std over seeds; Δ, p and CI vs base)",
                  title_justify="left")
    for col in header:
        table.add_column(col, justify="left" if col in (*header[:8],) else "right")
    for row in cells:
        table.add_row(*row)
    if any(not r.generation for r in result.rows):
        out_console.print(table)
    _print_generation_rows([r for r in result.rows if r.generation], GROUP_FIELDS)
    for skipped in result.skipped:
        out_console.print(f"[yellow]unfinished, skipped:[/] {skipped}", highlight=False, soft_wrap=True)
    for note in result.notes:
        out_console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if result.plot is not None:
        say(f"validation curves: {result.plot}")


def _print_generation_rows(rows: list, group_fields: tuple[str, ...]) -> None:
    """Seq2seq runs: sacreBLEU, BLEU-avg (nlg-eval style, 0..1 as in the paper), chrF, ROUGE; mean ± std."""
    if not rows:
        return
    from rich.table import Table

    table = Table(title="pifi report, seq2seq (sacreBLEU / chrF / ROUGE F1 in %, BLEU-avg 0..1 as the paper; "
                  "mean ± std over seeds)", title_justify="left")
    metrics = {"bleu": "BLEU", "bleu_avg": "BLEU-avg", "chrf": "chrF", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2",
               "rougeL": "ROUGE-L"}
    for col in (*group_fields[:3], "split", "seeds", *metrics.values()):
        table.add_column(col, justify="left" if col in (*group_fields[:3], "split") else "right")
    for row in rows:
        cells = [(f"{m:.4f} ± {s:.4f}" if key == "bleu_avg" else f"{m:.2f} ± {s:.2f}") if key in row.generation
                 else "" for key in metrics for m, s in [row.generation.get(key, (0.0, 0.0))]]
        table.add_row(*row.group[:3], row.split, str(len(row.seeds)), *cells)
    out_console.print(table)


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

