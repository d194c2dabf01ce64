"""`pifi select` (rank every layer of an LLM, streamed one layer at a time) and `pifi sweep` (train per layer)."""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any, Optional

import typer

from pifi_train.config import TrainConfig
from pifi_train.options import GROUPS, DataOptions
from pifi_train.select.config import SelectConfig

from .common import (CacheDirOpt, DeviceOpt, QuietOpt, RevisionOpt, StepProgress, TokenOpt, dataclass_from_options,
                     err_console, field_default, out_console, say)
from .dataclass_options import values_for, with_dataclass_options

S = lambda name: field_default(SelectConfig, name)  # noqa: E731

LlmOpt = Annotated[str, typer.Option("--llm", help="Hub repo id, a local folder (config.json + *.safetensors + tokenizer files) or a .gguf file.")]
GgufOpt = Annotated[Optional[str], typer.Option("--gguf-file", help="Read this .gguf file of the --llm repo or folder.")]
ValidationFileOpt = Annotated[Optional[str], typer.Option("--validation-file", help="Local validation data (select: scored instead of --train-file).")]
LayersOpt = Annotated[Optional[str], typer.Option("--layers", help="A range 0:32 or a list 0,8,16,-1 (default: every layer).")]


# the data options select shares with pifi train (the same flags, types, defaults and help, written once in
# pifi_train/options.py); --validation-file and --max-length are select's own: they mean something else here
SHARED_DATA = ("task", "train_file", "text_column", "text_pair_column", "label_column", "max_train_samples",
               "max_eval_samples")


@with_dataclass_options(DataOptions, exclude=[f.name for f in fields(DataOptions) if f.name not in SHARED_DATA])
def select(
    llm: LlmOpt,
    gguf_file: GgufOpt = S("gguf_file"),
    validation_file: ValidationFileOpt = S("validation_file"),
    samples: Annotated[int, typer.Option("--samples", help="Seeded random samples of the validation data.")] = S("samples"),
    score: Annotated[str, typer.Option("--score", help="ilm (the PIFI-ILM fork's, 555ad63), probe (held-out k-fold logistic accuracy), both (ranked by probe) or fit (train L_in, L_out and the head through each layer on cached SLM states).")] = S("score"),
    pooling: Annotated[str, typer.Option("--pooling", help="mean (over real tokens) or last (last real token).")] = S("pooling"),
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per sample (fit: the SLM's, as pifi train's).")] = S("max_length"),
    layers: LayersOpt = S("layers"),
    folds: Annotated[int, typer.Option("--folds", help="Stratified folds of the probe score.")] = S("folds"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample draw and the folds.")] = S("seed"),
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per forward pass.")] = S("batch_size"),
    padding_side: Annotated[Optional[str], typer.Option("--padding-side", help="left or right (default: the tokenizer's).")] = S("padding_side"),
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="Tokenizer repo or folder (default: the LLM's own files).")] = S("tokenizer"),
    device: DeviceOpt = S("device"),
    cache_layers: Annotated[bool, typer.Option("--cache-layers", help="Store every layer read in the pifi cache.")] = S("cache_layers"),
    extract_top: Annotated[int, typer.Option("--extract-top", help="Store the best K layers in the pifi cache.")] = S("extract_top"),
    slm: Annotated[str, typer.Option("--slm", help="fit: the small LM that encodes the data (pretrained).")] = S("slm"),
    slm_run: Annotated[Optional[str], typer.Option("--slm-run", help="fit: encode with the fine-tuned SLM of this pifi train run (e.g. the base run of a sweep) instead.")] = S("slm_run"),
    plug: Annotated[str, typer.Option("--plug", help="fit: cls (the pooled vector crosses the layer) or sequence (every token: cost grows with length).")] = S("plug"),
    fit_epochs: Annotated[int, typer.Option("--fit-epochs", help="fit: epochs per layer.")] = S("fit_epochs"),
    fit_lr: Annotated[float, typer.Option("--fit-lr", help="fit: Adam learning rate of L_in, L_out and the head.")] = S("fit_lr"),
    fit_seeds: Annotated[int, typer.Option("--fit-seeds", help="fit: seeds per layer (scores averaged).")] = S("fit_seeds"),
    pairs: Annotated[Optional[str], typer.Option("--pairs", help="fit: also train pairs of layers: top:K (pairs among the K best) or adjacent:K (the K best with their neighbours).")] = S("pairs"),
    plot: Annotated[Optional[str], typer.Option("--plot", help="Write a PNG of the scores per layer (needs the plot extra: matplotlib).")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write selection.json.")] = S("output"),
    revision: RevisionOpt = S("revision"),
    token: TokenOpt = None,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    **shared: Any,
) -> None:
    """Rank every layer of an LLM for a task without loading the model: one layer in memory at a time."""
    from transformers.utils import logging as hf_logging

    from pifi_train.select.selection import plot_scores, run_select, train_command

    options = {**{k: v for k, v in locals().items() if k != "shared"}, **shared}
    hf_logging.disable_progress_bar()
    config = dataclass_from_options(SelectConfig, options, cache_dir=str(cache_dir) if cache_dir else None)
    _check_outputs((config.output, "-o"), (plot, "--plot"))  # before any layer is read
    with StepProgress(quiet, "pifi select") as progress:
        result = run_select(config, progress, token=token)
    _print_selection(result)
    if plot:
        say(f"plot: {plot_scores(result, plot)}")
    say(f"selection: {config.output}")
    for key in result.extracted:
        say(f"cached: {key}")
    say(("" if result.extracted else f"pifi extract --llm {config.llm} --layer {result.best['layer']}"
         + (f" --gguf-file {config.gguf_file}" if config.gguf_file else "") + "\n") + train_command(result))
    if result.best_pair is not None:
        say("best pair: " + train_command(result, result.best_pair["layers"], post_norm=False))


def _check_outputs(*targets: tuple[Optional[str], str]) -> None:
    """Refuse a user-named output (FIFO, device, folder, missing folder) before any work starts."""
    from pifi_extract.outputs import check_output_file

    for path, option in targets:
        if path:
            check_output_file(path, option)


def _print_selection(result) -> None:  # type: ignore[no-untyped-def]
    from pifi_train.select.selection import SCORE_COLUMNS

    names = [n for n in SCORE_COLUMNS if n in result.rows[0]] + (["fit_loss"] if result.fit else [])
    if result.fit:
        f = result.fit
        say(f"pifi select: {f['num_train']} training / {f['num_validation']} validation examples, "
            f"{f['encoder']['weights']} {f['encoder']['slm']}, ranked by fit (validation accuracy)")
    else:
        say(f"pifi select: {result.num_samples} samples, ranked by {result.to_dict()['rank_by']}")
    _table(["layer", *names, "rank"], [(row["name"], *[row[n] for n in names], row["rank"]) for row in result.rows])
    if result.pairs:
        p = result.fit["pairs"]
        say(f"pairs: {p['trained']} trained ({p['mode']}:{p['k']}) of the model's {p['of']} pairs of two layers")
        _table(["pair", "fit", "fit_loss", "rank"],
               [(r["name"], r["fit"], r["fit_loss"], r["rank"]) for r in result.pairs])
    note = _noise_note(result.rows, result.num_samples) if "probe" in names and not result.fit else None
    if note:
        say(note)
    what = "layers only" if result.fit else f"{result.embedding_rows} embedding rows"
    err_console.print(f"read {result.bytes_read / 1e6:.1f} MB ({what}"
                      f"{', cached layers ' + ','.join(map(str, result.cached_layers)) if result.cached_layers else ''})",
                      highlight=False)


def _noise_note(rows: list, samples: int) -> Optional[str]:
    """A note when the probe ranking is within noise: layers whose accuracy is within 2 standard errors of the best."""
    from pifi_train.stats import accuracy_standard_error

    scores = [r["probe"] for r in rows if r["probe"] is not None]  # None: a layer with non-finite states
    if not scores:
        return None
    best = max(scores)
    se = accuracy_standard_error(best, samples)
    close = [s for s in scores if best - s < 2 * se]
    if len(close) < 2:
        return None
    return (f"note: with {samples} samples a probe accuracy has a standard error of about ±{100 * se:.1f} points; "
            f"{len(close)} of {len(rows)} layers are within 2 of them of the best, so their order is within noise "
            f"(more --samples narrows it)")


def _table(columns: list[str], rows: list[tuple]) -> None:  # type: ignore[type-arg]
    from rich.table import Table

    table = Table()
    for col in columns:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(row[0], *["—" if v is None else f"{v:.4f}" for v in row[1:-1]], str(row[-1]),
                      style="bold green" if row[-1] == 1 else None)
    out_console.print(table)


@with_dataclass_options(*GROUPS, exclude=("method", "layer_artifact", "lora_r", "lora_alpha", "lora_dropout",
                                          "lora_targets", "output_dir"))
def sweep(
    llm: LlmOpt,
    output_dir: Annotated[str, typer.Option("--output-dir", help="Sweep folder: base/, layer-<i>/ and sweep.json.")],
    layers: LayersOpt = None,
    selection: Annotated[Optional[str], typer.Option("--selection", help="A selection.json from pifi select: report Spearman between its scores and the swept metric.")] = None,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Write a PNG of the metric per layer (needs the plot extra: matplotlib).")] = None,
    gguf_file: GgufOpt = None,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    **options: Any,
) -> None:
    """Train PiFi once per layer and seed (and the base SLM), in any task family: the metric per layer, Spearman against pifi select."""
    from transformers.utils import logging as hf_logging

    from pifi_train.families import FAMILIES
    from pifi_train.select.sweep import plot_sweep, run_sweep

    hf_logging.disable_progress_bar()
    train = TrainConfig(**values_for(TrainConfig, options, output_dir=output_dir))
    _check_outputs((plot, "--plot"))  # before any training
    with StepProgress(quiet, "pifi sweep") as progress:
        result = run_sweep(llm, train, layers=layers, gguf_file=gguf_file, revision=revision, token=token,
                           cache_dir=str(cache_dir) if cache_dir else None, selection=selection, progress=progress)
    from rich.table import Table

    metric = FAMILIES[result.family].metrics.metric(result.metric)
    table = Table(title=f"pifi sweep ({result.family}): {result.split} {metric.label}, mean of {train.seeds} seed(s)",
                  title_justify="left")
    for col in ("layer", metric.label, "vs base"):
        table.add_column(col, justify="right")
    base = result.mean("base")
    table.add_row("base", metric.show(base), "")
    for i in result.layers:
        value = result.mean(str(i))
        table.add_row(str(i), metric.show(value), f"{metric.points(value) - metric.points(base):+.2f}")
    out_console.print(table)
    from pifi_train.stats import spearman_p_value

    for name, rho in result.spearman.items():
        p = spearman_p_value(rho, len(result.layers))
        noise = "" if p < 0.05 else ": within noise (no evidence of a ranking; sweep more layers or seeds)"
        say(f"spearman({name}, {metric.label}) = {rho:.3f} over {len(result.layers)} layers, p = {p:.3f} (exact for "
            f"<= 8 layers){noise}")
    if plot:
        say(f"plot: {plot_sweep(result, plot)}")
    say(f"sweep: {result.output_dir / 'sweep.json'}")


def register(app: typer.Typer) -> None:
    app.command()(select)
    app.command()(sweep)
