"""Strict checks of the config fields pifi reads, and of a layer's tensors against them (pure: no I/O).

JSON ``true`` is a Python ``int``: a config saying ``num_hidden_layers: true`` must not become one layer, and
one saying ``num_attention_heads: 3`` where 3 does not divide ``hidden_size`` must not reach transformers (a
traceback, or a layer that computes something else). Every check raises the caller's error class with one line
naming the field, the value and what it must be.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .errors import PifiError

MAX_LAYERS = 10_000  # no model comes near it (Llama-3.1-405B: 126); a larger count is a corrupt or crafted config
# Fields that, when present (and not null), must be positive integers.
POSITIVE_INTS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim")


def is_int(value: object) -> bool:
    """A JSON integer (``true``/``false`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite JSON number (``true``/``false`` are not)."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


def check_layer_config(
    config: Mapping[str, Any], *, num_layers_attr: str | None, norm_eps_attr: str | None, where: str,
    error: type[PifiError],
) -> int:
    """Check the fields that shape one decoder layer; return the number of layers (0 when ``num_layers_attr``
    is None: an architecture pifi does not know, whose layer count it cannot find).

    ``where`` names the config ("config.json", "artifact x.safetensors"); ``error`` is raised.
    """
    n = config.get(num_layers_attr) if num_layers_attr else 0
    if num_layers_attr and (not is_int(n) or not 0 < n <= MAX_LAYERS):
        raise error(f"{where}: {num_layers_attr} is {str(n)[:40]!r}, not a layer count (an integer from 1 to "
                    f"{MAX_LAYERS})", "the config is corrupt or crafted: download or extract the model again")
    for name in POSITIVE_INTS:
        value = config.get(name)
        if value is not None and (not is_int(value) or value <= 0):
            raise error(f"{where}: {name} is {str(value)[:40]!r}, not a positive integer",
                        "the config is corrupt or crafted")
    eps = config.get(norm_eps_attr) if norm_eps_attr else None
    if eps is not None and (not is_number(eps) or eps <= 0):
        raise error(f"{where}: {norm_eps_attr} is {str(eps)[:40]!r}, not a positive number",
                    "the config is corrupt or crafted")
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    kv = config.get("num_key_value_heads")
    if hidden and heads and config.get("head_dim") is None and hidden % heads:
        raise error(f"{where}: num_attention_heads={heads} does not divide hidden_size={hidden} (and no head_dim)",
                    "the config is corrupt or crafted: no such layer can be built")
    if heads and kv and heads % kv:
        raise error(f"{where}: num_key_value_heads={kv} does not divide num_attention_heads={heads}",
                    "the config is corrupt or crafted: no such layer can be built")
    return n  # type: ignore[return-value]


def check_layer_shapes(
    shapes: Mapping[str, tuple[int, ...]], config: Mapping[str, Any], *, where: str, error: type[PifiError]
) -> None:
    """Refuse a layer whose tensors (layer-relative names) disagree with its config: the layer norms must be
    ``(hidden_size,)``, some tensor must have a ``hidden_size`` axis, and the q/k/v projections (where the layer
    names them ``self_attn.{q,k,v}_proj.weight``) the rows the heads imply."""
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    if not is_int(hidden) or not shapes:
        return
    norms = {n: s for n, s in shapes.items() if n.endswith("layernorm.weight") and len(s) == 1}
    wrong = next((n for n, s in norms.items() if s != (hidden,)), None)
    if wrong is not None or not any(hidden in s for s in shapes.values()):
        shown = f"{wrong} is {list(shapes[wrong])}" if wrong else "no tensor has that size"
        raise error(f"{where} says hidden_size={hidden} but the layer's tensors disagree ({shown})",
                    "the config does not match the weights; fix or re-download it")
    if not is_int(heads) or heads <= 0:
        return
    head_dim = config.get("head_dim") or hidden // heads
    kv = config.get("num_key_value_heads") or heads
    for proj, count in (("q", heads), ("k", kv), ("v", kv)):
        shape = shapes.get(f"self_attn.{proj}_proj.weight")
        if shape is not None and (len(shape) != 2 or shape[0] != count * head_dim):
            raise error(f"{where}: self_attn.{proj}_proj.weight is {list(shape)} but the config's heads need "
                        f"{count} x {head_dim} = {count * head_dim} rows",
                        "the config does not match the weights: no such layer can be built")
