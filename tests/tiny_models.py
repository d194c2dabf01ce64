"""Tiny random models of every supported architecture, saved as sharded safetensors.

``make_tiny_model("llama", folder)`` builds a random ``AutoModelForCausalLM`` from its
transformers config with tiny sizes (hidden 64, 4 layers, 4 heads, 2 kv heads, vocab 128,
intermediate 128) and saves it with ``save_pretrained(safe_serialization=True,
max_shard_size="40KB")``: one layer is ~150 KB, so every model has many shards and every
layer's tensors straddle several of them (``shards_of_layer`` says which).

Import it from a test as ``from tiny_models import make_tiny_model`` (pytest puts
``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

SLIDING = "sliding_attention"
FULL = "full_attention"


@dataclass(frozen=True)
class TinySpec:
    """How to shrink one architecture's config."""

    # Config keys that hold the kv-head count and the MLP width (None: the config has no such key).
    kv_heads_key: str | None = "num_key_value_heads"
    intermediate_key: str = "intermediate_size"
    # Fixed, architecture-specific fields (sliding windows, layer types, variants...).
    fields: dict[str, Any] = field(default_factory=dict)


#: One entry per supported architecture. Sliding-window models get a window of 4, so
#: sequences of 8+ tokens exercise it; Gemma-2/3 alternate sliding/full like the real models
#: (layer 0 sliding), so the last layer of a 4-layer model is full and layer 2 is sliding.
TINY_CONFIGS: dict[str, TinySpec] = {
    "llama": TinySpec(),
    # Mistral-7B v0.1 style: one window for every layer (later Mistral releases set it to null).
    "mistral": TinySpec(fields={"sliding_window": 4}),
    # Real Qwen2.5 checkpoints keep use_sliding_window=False; enabling it here exercises the
    # per-layer rule: layers >= max_window_layers (only layer 3) slide.
    "qwen2": TinySpec(fields={"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 3}),
    "qwen3": TinySpec(),
    "gemma2": TinySpec(fields={"sliding_window": 4, "layer_types": [SLIDING, FULL] * 2}),
    "gemma3_text": TinySpec(fields={"sliding_window": 4, "layer_types": [SLIDING, FULL] * 2}),
    "phi3": TinySpec(fields={"sliding_window": None}),
    "olmo2": TinySpec(),
    "gpt_neox": TinySpec(kv_heads_key=None, fields={"use_parallel_residual": True}),
    # new_decoder_architecture=True: Falcon-40B/180B and Falcon2-11B (grouped kv heads, two
    # layer norms in parallel attention); the modern layout. Falcon-7B style (multi_query) and
    # Falcon-RW style (alibi) are in TINY_VARIANTS.
    "falcon": TinySpec(
        kv_heads_key="num_kv_heads",
        intermediate_key="ffn_hidden_size",
        fields={"new_decoder_architecture": True, "parallel_attn": True, "bias": False, "alibi": False},
    ),
    # StableLM-2-12B style: per-head q/k layer norms and qkv bias.
    "stablelm": TinySpec(fields={"qk_layernorm": True, "use_qkv_bias": True, "use_parallel_residual": False}),
}

#: Extra configurations worth testing: name -> (model_type, overrides).
TINY_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "falcon-7b-style": ("falcon", {"new_decoder_architecture": False, "multi_query": True, "parallel_attn": True}),
    "falcon-rw-alibi": (
        "falcon",
        {
            "new_decoder_architecture": False,
            "multi_query": False,
            "num_kv_heads": 4,  # without multi_query every head has its own k/v
            "parallel_attn": False,
            "alibi": True,
            "bias": True,
        },
    ),
    "gemma3-bidirectional": ("gemma3_text", {"use_bidirectional_attention": True}),
    # Llama-3.1's scaled rotary (rope_type llama3), shrunk to the tiny context.
    "llama-3.1-rope": (
        "llama",
        {
            "rope_parameters": {
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            }
        },
    ),
}


def tiny_config(
    model_type: str,
    *,
    num_layers: int = 4,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    **overrides: Any,
):
    """The transformers config object of a tiny ``model_type`` model."""
    from transformers import AutoConfig

    spec = TINY_CONFIGS[model_type]
    defaults = AutoConfig.for_model(model_type).to_dict()
    values: dict[str, Any] = {
        "vocab_size": 128,
        "hidden_size": hidden,
        "num_hidden_layers": num_layers,
        "num_attention_heads": heads,
        spec.intermediate_key: 128,
        "max_position_embeddings": 128,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    if spec.kv_heads_key is not None:
        values[spec.kv_heads_key] = kv_heads
    if "head_dim" in defaults:  # some configs default to a fixed head_dim (Qwen3 128, Gemma 256)
        values["head_dim"] = hidden // heads
    if "query_pre_attn_scalar" in defaults:
        values["query_pre_attn_scalar"] = hidden // heads
    values.update(spec.fields)
    if "layer_types" in values and num_layers != 4:
        pattern = values["layer_types"]
        values["layer_types"] = [pattern[i % len(pattern)] for i in range(num_layers)]
    values.update(overrides)
    return AutoConfig.for_model(model_type, **values)


def make_tiny_model(
    model_type: str,
    folder: str | Path,
    *,
    num_layers: int = 4,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    max_shard_size: str | int = "40KB",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    **overrides: Any,
) -> Path:
    """Build a random tiny ``model_type`` model and save it, sharded, into ``folder``."""
    from transformers import AutoModelForCausalLM

    config = tiny_config(
        model_type, num_layers=num_layers, hidden=hidden, heads=heads, kv_heads=kv_heads, **overrides
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    _randomize_norms(model, seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True, max_shard_size=max_shard_size)
    return folder


def build_tiny_model(model_type: str, *, seed: int = 0, **overrides: Any):
    """The tiny model itself (fp32, eval), as ``make_tiny_model`` would save it."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(model_type, **overrides))
    _randomize_norms(model, seed)
    return model.eval()


def _randomize_norms(model: torch.nn.Module, seed: int) -> None:
    """Norm weights init to 1 (or 0 for Gemma's 1+w): make them random so a test notices a
    missing or misplaced norm tensor."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or "ln_" in name:
                param.copy_(1.0 + 0.2 * torch.randn(param.shape, generator=generator).to(param.dtype))


def weight_map(folder: str | Path) -> dict[str, str]:
    """Tensor name -> shard file name of a saved model (sharded or single-file)."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return json.loads(index.read_text())["weight_map"]
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", "pt") as f:
        return {name: "model.safetensors" for name in f.keys()}


def shards_of_layer(folder: str | Path, prefix: str) -> set[str]:
    """The shard files that hold tensors whose names start with ``prefix``."""
    return {shard for name, shard in weight_map(folder).items() if name.startswith(prefix)}


def layer_state_dict(model: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """The slice of ``model.state_dict()`` under ``prefix``, prefix stripped (cloned)."""
    return {
        name[len(prefix):]: tensor.detach().clone()
        for name, tensor in model.state_dict().items()
        if name.startswith(prefix)
    }
