"""Counting one forward pass of a model: FLOPs (torch's own ``FlopCounterMode``), the paper's fvcore-style
multiply-adds, parameters per module and the peak of live tensors — all on the meta device, so a model of any
size is counted without its weights or the memory they take.

- **FLOPs**: ``torch.utils.flop_counter.FlopCounterMode``, 2 per multiply-add of every matmul, attention included
  (CPU's fused attention kernel is registered with torch's own SDPA formula, so a count is the same on any device).
- **paper MACs**: what fvcore (the paper's Table 16 tool) counts on transformers' models: one per multiply-add of
  the linear layers, plus 5 per element normalised by an affine LayerNorm; fvcore does not count the SDPA op, so
  attention is left out.
- **peak bytes**: the weights plus the largest total of live intermediate tensors during the forward (an estimate:
  no allocator rounding, no kernel workspaces).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from pifi_extract.errors import ConfigError

aten = torch.ops.aten
ATTENTION_OPS = ("aten.bmm", "aten.baddbmm", "aten._scaled_dot_product_efficient_attention",
                 "aten._scaled_dot_product_flash_attention", "aten._scaled_dot_product_cudnn_attention",
                 "aten._scaled_dot_product_flash_attention_for_cpu")
LINEAR_OPS = ("aten.mm", "aten.addmm")
LAYER_NORM = "aten.native_layer_norm"
MODULES = ("slm", "l_in", "layer", "l_out", "head")


def _layer_norm_elements(input_shape: Any, normalized_shape: Any, weight_shape: Any = None, *args: Any,
                         out_shape: Any = None, **kwargs: Any) -> int:
    """fvcore's count of a LayerNorm: 5 per element with an affine weight, else 4."""
    count = 1
    for size in input_shape:
        count *= int(size)
    return count * (5 if weight_shape is not None else 4)


def _cpu_attention(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, out_shape: Any = None,
                   **kwargs: Any) -> int:
    """CPU's fused attention kernel, counted with torch's formula for the CUDA kernels."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


COUNTED = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,  # counted as on CUDA
           aten.native_layer_norm: _layer_norm_elements}  # kept apart: the paper's count only


class MetaScalars(TorchDispatchMode):
    """Answers the one data-dependent question transformers asks of an all-ones mask on the meta device
    (``mask.all()``: may the mask be skipped?) with True, which is right for the unpadded inputs counted here;
    any other value read off a meta tensor is refused in one line."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func is aten._local_scalar_dense.default and args[0].is_meta:
            if args[0].dtype == torch.bool:
                return True
            raise ConfigError("counting on the meta device met a value that depends on the data",
                              "pass --random-weights to count on real tensors")
        return func(*args, **(kwargs or {}))


class LiveBytes(TorchDispatchMode):
    """The peak total of tensors created inside the mode and still alive (``exclude``: weights, inputs)."""

    def __init__(self, exclude: Iterable[torch.Tensor]) -> None:
        super().__init__()
        self.skip = {id(t.untyped_storage()) for t in exclude}
        self.sizes: dict[int, int] = {}
        self.live = self.peak = 0

    def _free(self, key: int) -> None:
        self.live -= self.sizes.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key = id(storage)
                if key in self.skip or key in self.sizes:
                    continue
                self.sizes[key] = storage.nbytes()
                self.live += self.sizes[key]
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._free, key)
        return out


@dataclass
class ForwardCount:
    """One forward pass, counted."""

    flops: int  # torch's count: 2 per multiply-add, attention included
    attention_flops: int
    paper_macs: int  # fvcore-style (see the module docstring)
    module_flops: dict[str, int]  # slm / l_in / layer / l_out / head
    parameters: dict[str, int]  # slm / l_in / layer / l_out / head
    weight_bytes: int
    activation_bytes: int  # peak of live intermediates

    @property
    def peak_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes


def module_of(name: str) -> str:
    """Which part of a pifi model a parameter or module path (``slm.model.encoder.l_in.weight``) belongs to."""
    parts = name.split(".")
    for part in ("l_in", "l_out"):
        if part in parts:
            return part
    return parts[0] if parts[0] in ("layer", "head") else "slm"


def parameters_by_module(model: torch.nn.Module, counted_layer: Callable[[str], bool]) -> dict[str, int]:
    """Parameters of each part (a tied weight once); ``counted_layer(name)``: whether a tensor of the frozen layer
    counts (its final norm only with --post-norm)."""
    sizes = dict.fromkeys(MODULES, 0)
    for name, param in model.named_parameters():
        part = module_of(name)
        if part != "layer" or counted_layer(name):
            sizes[part] += param.numel()
    return sizes


def count_forward(model: torch.nn.Module, inputs: Mapping[str, torch.Tensor],
                  counted_layer: Callable[[str], bool] = lambda name: True) -> ForwardCount:
    """Count ``model(**inputs)`` (a meta-device model and inputs) under no_grad."""
    tensors = [*model.parameters(), *model.buffers(), *inputs.values()]
    live = LiveBytes(tensors)
    counter = FlopCounterMode(display=False, custom_mapping=COUNTED)
    with MetaScalars(), live, counter, torch.no_grad():
        model(**inputs)
    by_op = {str(op): n for op, n in counter.get_flop_counts().get("Global", {}).items()}
    flops = sum(n for op, n in by_op.items() if op != LAYER_NORM)
    attention = sum(by_op.get(op, 0) for op in ATTENTION_OPS)
    paper = sum(by_op.get(op, 0) for op in LINEAR_OPS) // 2 + by_op.get(LAYER_NORM, 0)
    counts = counter.get_flop_counts()
    modules = dict.fromkeys(MODULES, 0)
    for path, ops in counts.items():  # "Root.slm.model.encoder.l_in": the root's class name, then attributes
        inner = path.split(".", 1)[1] if "." in path else ""
        part = inner if inner in ("layer", "head") else inner.rsplit(".", 1)[-1]
        if part in ("layer", "head", "l_in", "l_out") and (part == inner or part in ("l_in", "l_out")):
            modules[part] += sum(n for op, n in ops.items() if str(op) != LAYER_NORM)
    modules["slm"] = flops - sum(n for part, n in modules.items() if part != "slm")  # the SLM holds seq2seq's plug
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return ForwardCount(flops, attention, paper, modules, parameters_by_module(model, counted_layer), weights,
                        live.peak)
