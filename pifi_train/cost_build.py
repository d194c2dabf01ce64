"""The torch side of ``pifi cost`` (:mod:`pifi_train.cost`): building an arm's model without a checkpoint, counting
its forward on the meta device, timing it with real tensors."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

import torch

from pifi_extract.errors import ConfigError

from .cost_spec import CostOptions, CostTarget
from .cost_count import ForwardCount, count_forward


def dtype_of(name: str) -> torch.dtype:
    return getattr(torch, name)


def build_arm(target: CostTarget, arm: str, device: str | torch.device = "meta",
              dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The arm's model with no checkpoint: on the meta device (counting) or random values on ``device``."""
    from .ablations import apply_lora
    from .frozen_layer import shaped_frozen_layer
    from .frozen_stack import FrozenStack

    runtime = target.family.runtime()
    options = replace(target.options, method=arm)
    with torch.device(device):
        slm = runtime.load_slm(target.slm, target.slm_config, pretrained=False)
        layer = None
        if arm == "pifi":
            built = [shaped_frozen_layer(s.config, s.index, device=device, dtype=dtype, final_norm=options.post_norm)
                     for s in target.layers]
            layer = built[0] if len(built) == 1 else FrozenStack(built)
        model = runtime.build_model(slm, target.spec, options, layer)
        if arm == "lora" and target.lora is not None:
            apply_lora(model, *target.lora)
    return model.to(dtype).eval().requires_grad_(False)  # inference: no tensor asks for a gradient


def _inputs(target: CostTarget, options: CostOptions, device: str | torch.device) -> dict[str, torch.Tensor]:
    """A batch of unpadded inputs (all-ones masks), as the paper's fixed-length batches."""
    batch, length = options.batch_size, options.seq_len or target.max_length
    ids = torch.ones(batch, length, dtype=torch.long, device=device)  # (B, T)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if target.family.name == "seq2seq":
        inputs["labels"] = torch.ones(batch, options.target_len or target.target_len, dtype=torch.long,
                                      device=device)  # (B, L)
    return inputs


def _layer_counted(target: CostTarget, arm: str) -> Any:
    """Which tensors of the frozen layer count: the final norm only when the run applies it (--post-norm)."""
    post_norm = target.options.post_norm and arm == "pifi"
    return lambda name: post_norm or "final_norm" not in name.split(".")


def _timed_model(target: CostTarget, arm: str, options: CostOptions, device: torch.device) -> tuple[Any, str] | None:
    """(a model with real tensors on ``device``, where its values come from), or None when it cannot be timed."""
    dtype = dtype_of(options.dtype)
    if target.run is not None and arm == target.run.options.method:
        from .run_record import load_run

        return load_run(target.run, device=str(device)).model.to(dtype).eval(), "the run's weights"
    present = target.slm_weights is not None and all(s.artifact for s in target.layers if arm == "pifi")
    if present and target.run is None:
        from .frozen_layer import load_layer
        from .frozen_stack import FrozenStack

        runtime = target.family.runtime()
        slm = runtime.load_slm(target.slm_weights, target.slm_config, pretrained=True)
        layer = None
        if arm == "pifi":
            built = [load_layer(str(s.artifact), device=device, dtype=dtype) for s in target.layers]
            layer = built[0] if len(built) == 1 else FrozenStack(built)
        model = runtime.build_model(slm, target.spec, replace(target.options, method=arm), layer)
        return model.to(device=device, dtype=dtype).eval(), "the given weights (a random head)"
    if options.random_weights or target.run is not None:
        return build_arm(target, arm, device, dtype), "random weights"
    return None


def _time(model: Any, inputs: dict[str, torch.Tensor], options: CostOptions, device: torch.device
          ) -> tuple[float, int | None]:
    """(ms per example, median of ``repeats`` timed forwards; CUDA's peak allocated bytes or None)."""
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with torch.no_grad():
        for _ in range(2):
            model(**inputs)
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        seconds = []
        for _ in range(options.repeats):
            start = time.perf_counter()
            model(**inputs)
            sync()
            seconds.append(time.perf_counter() - start)
    peak = int(torch.cuda.max_memory_allocated(device)) if cuda else None
    return 1000 * statistics.median(seconds) / options.batch_size, peak


def count_arm(target: CostTarget, arm: str, options: CostOptions) -> ForwardCount:
    """One forward of the arm's model on the meta device, counted; a shape the model cannot take is one line."""
    model = build_arm(target, arm, "meta", dtype_of(options.dtype))
    try:
        return count_forward(model, _inputs(target, options, "meta"), _layer_counted(target, arm))
    except RuntimeError as err:
        first = " ".join(str(err).split())[:200]
        raise ConfigError(f"the {arm} model cannot run {options.batch_size} inputs of this length: {first}",
                          "choose another --seq-len / --target-len") from None


def time_arm(target: CostTarget, arm: str, options: CostOptions, device: torch.device
             ) -> tuple[float, int | None, str] | None:
    """(ms per example, CUDA peak bytes or None, what the values were) of the arm with real tensors; None when
    there are none to be had."""
    timed = _timed_model(target, arm, options, device)
    if timed is None:
        return None
    model, source = timed
    try:
        latency, peak = _time(model, _inputs(target, options, device), options, device)
    except (RuntimeError, IndexError) as err:
        first = " ".join(str(err).split())[:200]
        raise ConfigError(f"timing the {arm} model on {device} failed: {first}",
                          "choose another --seq-len / --batch-size / --device") from None
    return latency, peak, source
