"""`pifi demo`: the whole pipeline offline on real pip-shipped assets."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pifi_train.demo import DemoOptions

from .common import CacheDirOpt, DeviceOpt, QuietOpt, err_console, field_default
from .common import out_console as out
from .train_cmds import TrainProgress

D = lambda name: field_default(DemoOptions, name)  # noqa: E731


def demo(
    quick: Annotated[bool, typer.Option("--quick", help="A few hundred examples, 2 epochs (~1-2 min on 2 CPU cores): a smoke test.")] = D("quick"),
    seeds: Annotated[int, typer.Option("--seeds", help="Train each configuration with this many seeds (mean ± std).")] = D("seeds"),
    seed: Annotated[int, typer.Option("--seed", help="First training seed (the data split is fixed).")] = D("seed"),
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs (default 3; --quick: 2).")] = D("epochs"),
    train_size: Annotated[Optional[int], typer.Option("--train-size", help="Training snippets used (default 2048 of 10,248; --quick: 256).")] = D("train_size"),
    eval_size: Annotated[Optional[int], typer.Option("--eval-size", help="Validation/test snippets (default: all 1,280 each; --quick: 64).")] = D("eval_size"),
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (the paper's 5e-5).")] = D("lr"),
    device: DeviceOpt = D("device"),
    output_dir: Annotated[Optional[str], typer.Option("--output-dir", help="Where runs, data splits and the plot go (default runs/demo-<time>).")] = D("output_dir"),
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """The whole pipeline offline on real assets: SmolLM2's last layer from its GGUF, MiniLM base vs + PiFi."""
    from transformers.utils import logging as hf_logging

    from pifi_train.demo import run_demo

    hf_logging.disable_progress_bar()
    options = DemoOptions(quick=quick, seeds=seeds, seed=seed, epochs=epochs, train_size=train_size,
                          eval_size=eval_size, lr=lr, device=device, output_dir=output_dir,
                          cache_dir=str(cache_dir) if cache_dir else None)
    stage = (lambda text: None) if quiet else (lambda text: err_console.print(f"[bold]{text}[/]", highlight=False))
    with TrainProgress(quiet) as progress:
        result = run_demo(options, progress, stage)
    _print_demo(result)


def _print_demo(result: object) -> None:
    from rich import box
    from rich.table import Table

    r = result  # pifi_train.demo.DemoResult
    mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731

    def pct(values: list) -> str:  # "80.23" for one seed, "80.2±1.1" (mean ± sample std) for several
        mean, std = r.methods[0].stat(values)
        return f"{100 * mean:.2f}" if len(values) == 1 else f"{100 * mean:.1f}±{100 * std:.1f}"

    layer = r.layer
    out.print(
        f"layer: {layer.parameters / 1e6:.2f}M params, artifact {mb(layer.artifact_bytes)} (fp32, dequantized from "
        f"{'/'.join(layer.quantization_types) or 'float'}) = {100 * layer.artifact_bytes / layer.gguf_bytes:.1f}% of the "
        f"{mb(layer.gguf_bytes)} GGUF; extraction read {mb(layer.gguf_layer_bytes)} of layer tensors "
        f"({100 * layer.gguf_layer_bytes / layer.gguf_bytes:.1f}%) + the header"
        f"{' (cache hit)' if layer.from_cache else f' in {layer.seconds:.1f} s'}",
        highlight=False, soft_wrap=True)
    d = r.data
    table = Table(title=f"Rotten Tomatoes fresh/rotten, test {d['test']} snippets; trained on {d['train']} of "
                        f"{d['train_full']}, {r.options['epochs']} epochs, {r.options['seeds']} seed(s)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("model", "acc %", "F1 %", "Δ acc", "trained", "frozen", "s/step"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    base = next((m for m in r.methods if m.name == "base"), None)
    for m in r.methods:
        delta = f"{100 * (m.stat(m.accuracy)[0] - base.stat(base.accuracy)[0]):+.2f}" if base and m is not base else ""
        frozen = f"{m.frozen_parameters / 1e6:.2f}M" if m.frozen_parameters else "0"
        table.add_row(m.label, pct(m.accuracy), pct(m.macro_f1), delta, f"{m.trainable_parameters / 1e6:.2f}M", frozen,
                      f"{m.step_seconds:.2f}")
    out.print(table)
    out.print("acc/F1: test split, best epoch by validation accuracy; trained/frozen: parameters; s/step: 32 snippets",
              highlight=False, soft_wrap=True)
    if r.plot:
        out.print(f"validation curves: {r.plot}", highlight=False, soft_wrap=True)
    times = ", ".join(f"{m.name} {m.seconds / 60:.1f}" for m in r.methods)
    out.print(f"runs, data splits and demo.json: {r.output_dir}  (total {r.seconds / 60:.1f} min: {times})",
              highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(demo)
