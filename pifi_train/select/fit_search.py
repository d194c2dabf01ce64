"""``pifi select --score fit``: a search that trains, at the cost of a few epochs in all.

1. The data is loaded as ``pifi train`` loads it (same split, cleaning, ``--max-*-samples``).
2. The SLM runs once over the training and validation examples (:func:`.fit.encode`): the pretrained ``--slm``,
   or the fine-tuned SLM of a ``pifi train`` run (``--slm-run``, usually the base run a sweep trains anyway).
3. The layers are streamed as ``pifi select`` streams them (:class:`.layer_stream.LayerStream`: the next one read
   while the current one trains, at most two in memory); for each, L_in, L_out and the head are trained on the
   cached states through the frozen layer (:func:`.fit.fit_layer`) and the validation set is scored. The last
   layer is also fitted with the model's final norm after it (``L+norm``, ``pifi train --post-norm``).
4. ``--pairs``: pairs of layers (the paper's Table 14), pruned by the single-layer ranking (:mod:`.pairs`), each
   trained through both layers in model order (a :class:`~pifi_train.frozen_stack.FrozenStack`).

Only the classification family: a QA or seq2seq model's layer sees every token of a different head's input, which
this search does not model (refused in one line).
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from pifi_extract.errors import ConfigError

from .config import SelectConfig, parse_layers, parse_pairs
from .fit import FitOptions, FitScore, encode, fit_layer
from .pairs import pair_name, plan_pairs, total_pairs

StepCallback = Callable[[int, int, str], None]


@dataclass
class FitSearchResult:
    """Rows (one per fitted layer state), pairs, and what the search cost."""

    rows: list[dict[str, Any]]
    num_layers: int
    info: dict[str, Any]
    pairs: list[dict[str, Any]] = field(default_factory=list)
    bytes_read: int = 0
    cached_layers: list[int] = field(default_factory=list)


def fit_rank(rows: list[dict[str, Any]]) -> None:
    """Set each row's ``rank``: higher ``fit`` first, then lower ``fit_loss`` (a NaN loss last), then the earlier
    row."""
    from .scoring import rank

    losses = [-row["fit_loss"] if math.isfinite(row["fit_loss"]) else -math.inf for row in rows]
    for row, r in zip(rows, rank([row["fit"] for row in rows], losses)):
        row["rank"] = r


def _train_config(config: SelectConfig) -> Any:
    from ..config import TrainConfig

    return TrainConfig(task=config.task, train_file=config.train_file, validation_file=config.validation_file,
                       text_column=config.text_column, text_pair_column=config.text_pair_column,
                       label_column=config.label_column, max_train_samples=config.max_train_samples,
                       max_eval_samples=config.max_eval_samples, slm=config.slm, max_length=config.max_length,
                       method="base", plug=config.plug)


def load_encoder(config: SelectConfig, device: str) -> tuple[Any, Any, str, dict[str, Any]]:
    """(SLM, tokenizer, pooling, description): the fine-tuned SLM of ``--slm-run``, else the pretrained ``--slm``."""
    if config.slm_run is not None:
        from ..run_record import load_run

        run = load_run(config.slm_run, device=device)
        if run.family.name != "classification":
            raise ConfigError(f"--slm-run {config.slm_run} is a {run.family.name} run",
                              "pass a classification run (e.g. the base run of a sweep)")
        return run.model.slm, run.tokenizer, run.options.pooling, {
            "slm": run.options.slm, "weights": "fine-tuned", "run": str(config.slm_run), "method": run.options.method}
    from ..config import TrainConfig
    from ..slm import load_slm, load_slm_config, load_tokenizer

    return (load_slm(config.slm, load_slm_config(config.slm)).to(device), load_tokenizer(config.slm),
            TrainConfig.pooling, {"slm": config.slm, "weights": "pretrained"})


def run_fit_search(config: SelectConfig, progress: StepCallback | None = None, *,
                   token: str | bool | None = None) -> FitSearchResult:
    """Encode once, fit every chosen layer (then the pairs), rank by validation accuracy."""
    from layer_cache.get_or_extract import OpenSourceCache
    from pifi_extract.architectures import arch_for_config
    from pifi_extract.extract import open_source, plan_layers
    from pifi_extract.plan import num_layers_of

    from ..config import resolve_precision
    from ..families import family_of
    from ..families.classification.runtime import load_data
    from .layer_stream import LayerStream
    from .stream import pick_device, source_config

    family = family_of(config.task).name
    if family != "classification":
        raise ConfigError(f"--score fit covers classification tasks; {config.task} is {family}",
                          "use pifi sweep for QA and seq2seq layers")
    started = time.perf_counter()
    data = load_data(_train_config(config))
    dev = pick_device(config.device)
    precision = resolve_precision("auto", dev)
    source = open_source(config.llm, config.revision, token=token, gguf_file=config.gguf_file)
    num_layers = num_layers_of(cfg := source_config(source), arch_for_config(cfg))
    layers = parse_layers(config.layers, num_layers)
    pair_spec = parse_pairs(config.pairs) if config.pairs else None

    t = time.perf_counter()
    slm, tokenizer, pooling, described = load_encoder(config, str(dev))
    kw = dict(plug=config.plug, pooling=pooling, max_length=config.max_length, batch_size=config.batch_size,
              device=dev, precision=precision)
    train, validation = encode(slm, tokenizer, data.train, **kw), encode(slm, tokenizer, data.validation, **kw)
    slm_config = slm.config
    del slm
    encode_s = time.perf_counter() - t
    options = FitOptions(epochs=config.fit_epochs, lr=config.fit_lr, plug=config.plug, pooling=pooling,
                         seeds=tuple(range(config.seed, config.seed + config.fit_seeds)))
    fit = lambda layer, post_norm=False: fit_layer(layer, train, validation, data.num_labels, slm_config,  # noqa: E731
                                                   options, dev, precision, post_norm=post_norm)
    cache = OpenSourceCache(config.llm, source, gguf_file=config.gguf_file, revision=config.revision,
                            cache_dir=config.cache_dir)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pifi-fit-") as tmp:
        stream = LayerStream(source, plan_layers(source, layers), tmp, device=dev, dtype=precision.layer_dtype,
                             cache=cache, cache_layers=config.cache_layers, prefetch=config.prefetch)
        for k, (i, layer) in enumerate(stream):
            if progress is not None:
                progress(k, len(layers), f"layer {i}")
            rows.append(_row(i, False, fit(layer)))
            if i == num_layers - 1 and layer.final_norm is not None:
                rows.append(_row(i, True, fit(layer, True)))
            del layer
        fit_rank(rows)
        stats = stream.stats
        pairs, pair_stats = [], None
        if pair_spec is not None:
            ranked = [r["layer"] for r in sorted(rows, key=lambda r: r["rank"]) if not r["post_norm"]]
            chosen = plan_pairs(ranked, *pair_spec, num_layers)
            pairs, pair_stats = _fit_pairs(chosen, source, cache, config, tmp, dev, precision, fit, progress)
    if progress is not None:
        progress(len(layers), len(layers), "done")
    info = {
        "encoder": described, "plug": config.plug, "pooling": pooling,
        "epochs": options.epochs, "lr": options.lr, "seeds": list(options.seeds), "batch_size": options.batch_size,
        "num_train": len(train), "num_validation": len(validation), "tokens_per_example": train.states.shape[1],
        "device": str(dev), "layer_dtype": str(precision.layer_dtype).replace("torch.", ""),
        "seconds": {"total": time.perf_counter() - started, "encode": encode_s, "layers_fetch": stats.fetch_s,
                    "layers_build": stats.build_s, "fit": stats.compute_s, "wait_for_layers": stats.wait_s},
        "peak_layers_in_memory": stats.peak_alive,
    }
    if pair_spec is not None:
        info["pairs"] = {"mode": pair_spec[0], "k": pair_spec[1], "trained": len(pairs),
                         "of": total_pairs(num_layers), "seconds": pair_stats}
    bytes_read = stats.bytes_read + (pair_stats or {}).get("bytes_read", 0)
    return FitSearchResult(rows, num_layers, info, pairs, int(bytes_read), stats.cached_layers)


def _row(layer: int, post_norm: bool, score: FitScore) -> dict[str, Any]:
    return {"layer": layer, "post_norm": post_norm, "name": f"{layer}+norm" if post_norm else str(layer),
            "fit": score.accuracy, "fit_loss": score.loss, "fit_curves": score.curves}


def _fit_pairs(pairs: list[tuple[int, int]], source: Any, cache: Any, config: SelectConfig, tmp: str,
               dev: torch.device, precision: Any, fit: Callable[..., FitScore],
               progress: StepCallback | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fit every pair through its two layers in model order; two layers in memory at most."""
    from pifi_extract.extract import plan_layers

    from ..frozen_stack import FrozenStack
    from .layer_stream import LayerStream

    needed = sorted({i for pair in pairs for i in pair})
    stream = LayerStream(source, plan_layers(source, needed), tmp, device=dev, dtype=precision.layer_dtype,
                         cache=cache, cache_layers=config.cache_layers)
    paths = stream.fetch_all()
    out: list[dict[str, Any]] = []
    first, first_index = None, None
    t = time.perf_counter()
    for k, (a, b) in enumerate(pairs):
        if progress is not None:
            progress(k, len(pairs), f"pair {pair_name((a, b))}")
        if first_index != a:
            first = None  # frees its memory slot before the next first layer loads
            first, first_index = stream.load(paths[a]), a
        second = stream.load(paths[b])
        score = fit(FrozenStack([first, second]))
        del second
        out.append({"layers": [a, b], "name": pair_name((a, b)), "fit": score.accuracy, "fit_loss": score.loss,
                    "fit_curves": score.curves})
    del first
    fit_rank(out)
    return out, {"fit": time.perf_counter() - t, "layers_fetch": stream.stats.fetch_s,
                 "bytes_read": stream.stats.bytes_read, "peak_layers_in_memory": stream.stats.peak_alive}
