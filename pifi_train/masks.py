"""The attention mask (and ALiBi bias) one decoder layer gets, built as its model builds it.

Causal masks come from ``transformers.masking_utils`` with exactly the arguments the model's
own ``forward`` passes (see each ``modeling_<x>.py``); which mask function a layer gets is read
from its :class:`~pifi_extract.architectures.ArchSpec` row, never from an if-chain on model_type.

The returned mask is in the format of ``config._attn_implementation``: a 4D bool mask for sdpa,
a 4D additive float mask for eager, or ``None`` where sdpa may rely on ``is_causal=True``.
Bidirectional masks are always materialised, because a ``None`` mask means "causal" to sdpa
and "no mask at all" to eager.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import masking_utils as mu

from pifi_extract.architectures import ArchSpec, import_object

SLIDING_ATTENTION = "sliding_attention"


def layer_type_of(config: Any, layer_index: int) -> str | None:
    """``config.layer_types[layer_index]`` where the config has layer types, else None."""
    layer_types = getattr(config, "layer_types", None)
    return layer_types[layer_index] if layer_types else None


def uses_sliding_window(spec: ArchSpec, config: Any, layer_index: int) -> bool:
    """Whether the model gives this layer a sliding-window mask (spec.sliding_rule)."""
    if spec.sliding_rule == "config_window":
        return getattr(config, "sliding_window", None) is not None
    if spec.sliding_rule == "layer_types":
        return layer_type_of(config, layer_index) == SLIDING_ATTENTION
    return False


def build_layer_mask(
    spec: ArchSpec,
    config: Any,
    layer_index: int,
    hidden_states: torch.Tensor,  # (B, T, H), only shape/dtype/device are used
    attention_mask: torch.Tensor | None,  # (B, T), 1 = token, 0 = padding
    position_ids: torch.Tensor,  # (1 or B, T)
    causal: bool,
) -> torch.Tensor | None:
    """The mask the model would hand to layer ``layer_index`` (causal), or a padding-only mask."""
    sliding = uses_sliding_window(spec, config, layer_index)
    if not causal:
        make = mu.create_bidirectional_sliding_window_mask if sliding else mu.create_bidirectional_mask
        return make(
            config=config,
            inputs_embeds=hidden_states,
            attention_mask=attention_mask,
            allow_is_bidirectional_skip=False,
        )
    kwargs: dict[str, Any] = {
        "config": config,
        "inputs_embeds": hidden_states,
        "attention_mask": attention_mask,
        "cache": None,
        "position_ids": position_ids,
    }
    if spec.materialize_mask:
        kwargs["allow_is_causal_skip"] = False
    if spec.bidirectional_flag_attr and getattr(config, spec.bidirectional_flag_attr, False):
        # The model itself is bidirectional (Gemma3TextModel with use_bidirectional_attention).
        if sliding:
            overlay = import_object(spec.bidirectional_window_overlay)  # type: ignore[arg-type]
            kwargs["or_mask_function"] = overlay(config.sliding_window)
        else:
            kwargs["or_mask_function"] = lambda *args: torch.tensor(True, dtype=torch.bool)
    make = mu.create_sliding_window_causal_mask if sliding else mu.create_causal_mask
    return make(**kwargs)


def build_alibi(
    spec: ArchSpec,
    config: Any,
    hidden_states: torch.Tensor,  # (B, T, H)
    attention_mask: torch.Tensor | None,  # (B, T)
    mask: torch.Tensor | None,  # the layer mask from build_layer_mask
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(alibi, mask)`` as FalconModel.forward computes them; ``(None, mask)`` without ALiBi.

    With ALiBi the bias is built from the padding mask and folded into a float mask (the
    attention then adds it to its scores), exactly as the model does it.
    """
    if spec.alibi_builder is None or not getattr(config, spec.alibi_attr, False):
        return None, mask
    batch_size, seq_length, _ = hidden_states.shape
    num_heads = config.num_attention_heads
    if attention_mask is None:
        attention_mask = torch.ones((batch_size, seq_length), device=hidden_states.device, dtype=torch.long)
    alibi = import_object(spec.alibi_builder)(attention_mask, num_heads, dtype=hidden_states.dtype)  # (B*nh, 1, T)
    if mask is not None and mask.ndim == 4:
        min_dtype = torch.finfo(hidden_states.dtype).min
        if mask.dtype == torch.bool:
            zero = torch.full((), 0.0, device=mask.device, dtype=hidden_states.dtype)
            mask = torch.where(mask, zero, min_dtype)
        alibi = alibi.reshape(batch_size, -1, *alibi.shape[1:])  # (B, nh, 1, T)
        mask = torch.masked_fill(alibi / math.sqrt(config.hidden_size // num_heads), mask < -1, min_dtype)
    return alibi, mask
