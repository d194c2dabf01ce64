"""What pifi knows about each architecture, as data, in one place.

Everything architecture-specific — where a layer's tensors live in a checkpoint,
where the final norm lives, which transformers classes rebuild and run the layer,
which extra arguments its forward takes, how the model builds the layer's mask —
is an :class:`ArchSpec` row in :data:`ARCHITECTURES`. Code elsewhere looks rows
up; it never branches on ``model_type``.

Every row mirrors what the model's own ``forward`` does in transformers 5.x
(``transformers/models/<x>/modeling_<x>.py``); ``tests/test_architectures.py``
checks each row against a real tiny model (checkpoint keys, module classes,
default attention implementation).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from .errors import UnsupportedModelError

#: How the model picks a layer's causal mask.
#: ``"none"``: always ``create_causal_mask``.
#: ``"config_window"``: ``create_sliding_window_causal_mask`` for every layer when
#: ``config.sliding_window`` is not None (Mistral, Phi-3).
#: ``"layer_types"``: per layer, sliding when ``config.layer_types[i] == "sliding_attention"``
#: (Qwen2/3, Gemma-2/3).
SlidingRule = Literal["none", "config_window", "layer_types"]


@dataclass(frozen=True)
class ArchSpec:
    """How to find, rebuild and run one decoder layer of an architecture."""

    model_type: str
    # Checkpoint name prefix of layer i, e.g. "model.layers.{i}.".
    layer_prefix: str
    # Checkpoint name prefix of the final norm applied after the last layer.
    final_norm_prefix: str
    # Dotted path of the transformers decoder layer class.
    layer_class: str
    # Dotted path of the model-level rotary embedding class (None: no rotary).
    rotary_class: str | None
    # Config attribute holding the number of layers.
    num_layers_attr: str = "num_hidden_layers"
    # Extra, architecture-specific facts (free-form; nothing in pifi relies on it yet).
    extras: Mapping[str, Any] = field(default_factory=dict)
    # Dotted path of the final norm class; built as cls(hidden_size, eps=config.<norm_eps_attr>).
    final_norm_class: str = ""
    # Config attribute holding the norm epsilon.
    norm_eps_attr: str = "rms_norm_eps"
    # The attention implementation the model picks by default on CPU/GPU without flash-attn
    # ("sdpa", or "eager" where the model does not support sdpa: Gemma-2's logit softcapping).
    attn_implementation: str = "sdpa"
    # How the model chooses the layer's mask (see SlidingRule).
    sliding_rule: SlidingRule = "none"
    # The rotary module is called as rotary(x, position_ids, layer_type) (Gemma-3: local/global bases).
    rotary_takes_layer_type: bool = False
    # The layer's forward returns (hidden_states, attn_weights) instead of a tensor (Falcon).
    returns_tuple: bool = False
    # The model always materialises the causal mask (create_causal_mask(allow_is_causal_skip=False)).
    materialize_mask: bool = False
    # Dotted path of the model's ALiBi builder. When set, the layer's forward takes a required
    # ``alibi`` argument: None unless config.<alibi_attr> is true, in which case the model builds it
    # from the padding mask and folds it into the attention mask (Falcon-RW).
    alibi_builder: str | None = None
    alibi_attr: str = "alibi"
    # Name of the layer's cache argument (pifi never passes a cache; informational).
    cache_kwarg: str = "cache"
    # Config flag that makes the model itself bidirectional (EmbeddingGemma), and the dotted path of
    # the overlay the model then ORs into its sliding-window mask.
    bidirectional_flag_attr: str | None = None
    bidirectional_window_overlay: str | None = None
    # Layer-relative names (regex, full match) of stale tensors some checkpoints still hold but the
    # layer class no longer has (old buffers); skipped when extracting and loading, as transformers'
    # ``_keys_to_ignore_on_load_unexpected`` does.
    ignored_tensors: tuple[str, ...] = (r"(.*\.)?rotary_emb\.inv_freq",)

    def layer_tensor_prefix(self, index: int) -> str:
        """The checkpoint prefix of layer ``index`` (already resolved, non-negative)."""
        return self.layer_prefix.format(i=index)

    def is_ignored_tensor(self, relative_name: str) -> bool:
        """Whether a layer-relative tensor name is a stale buffer to skip (see ``ignored_tensors``)."""
        return any(re.fullmatch(pattern, relative_name) for pattern in self.ignored_tensors)


def _tf(module: str, name: str, file: str | None = None) -> str:
    return f"transformers.models.{module}.modeling_{file or module}.{name}"


def import_object(dotted: str) -> Any:
    """Import ``package.module.Name`` lazily (keeps ``import pifi_extract`` light)."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


_LAYER_NORM = "torch.nn.LayerNorm"

ARCHITECTURES: dict[str, ArchSpec] = {
    spec.model_type: spec
    for spec in [
        ArchSpec(
            "llama",
            "model.layers.{i}.",
            "model.norm.",
            _tf("llama", "LlamaDecoderLayer"),
            _tf("llama", "LlamaRotaryEmbedding"),
            final_norm_class=_tf("llama", "LlamaRMSNorm"),
        ),
        ArchSpec(
            "mistral",
            "model.layers.{i}.",
            "model.norm.",
            _tf("mistral", "MistralDecoderLayer"),
            _tf("mistral", "MistralRotaryEmbedding"),
            final_norm_class=_tf("mistral", "MistralRMSNorm"),
            sliding_rule="config_window",
        ),
        ArchSpec(
            "qwen2",
            "model.layers.{i}.",
            "model.norm.",
            _tf("qwen2", "Qwen2DecoderLayer"),
            _tf("qwen2", "Qwen2RotaryEmbedding"),
            final_norm_class=_tf("qwen2", "Qwen2RMSNorm"),
            sliding_rule="layer_types",
        ),
        ArchSpec(
            "qwen3",
            "model.layers.{i}.",
            "model.norm.",
            _tf("qwen3", "Qwen3DecoderLayer"),
            _tf("qwen3", "Qwen3RotaryEmbedding"),
            final_norm_class=_tf("qwen3", "Qwen3RMSNorm"),
            sliding_rule="layer_types",
        ),
        ArchSpec(
            "gemma2",
            "model.layers.{i}.",
            "model.norm.",
            _tf("gemma2", "Gemma2DecoderLayer"),
            _tf("gemma2", "Gemma2RotaryEmbedding"),
            final_norm_class=_tf("gemma2", "Gemma2RMSNorm"),
            attn_implementation="eager",  # _supports_sdpa = False: sdpa has no logit softcapping
            sliding_rule="layer_types",
        ),
        ArchSpec(
            "gemma3_text",
            "model.layers.{i}.",
            "model.norm.",
            _tf("gemma3", "Gemma3DecoderLayer"),
            _tf("gemma3", "Gemma3RotaryEmbedding"),
            final_norm_class=_tf("gemma3", "Gemma3RMSNorm"),
            sliding_rule="layer_types",
            rotary_takes_layer_type=True,
            bidirectional_flag_attr="use_bidirectional_attention",
            bidirectional_window_overlay=_tf("gemma3", "_bidirectional_window_overlay"),
        ),
        ArchSpec(
            "phi3",
            "model.layers.{i}.",
            "model.norm.",
            _tf("phi3", "Phi3DecoderLayer"),
            _tf("phi3", "Phi3RotaryEmbedding"),
            final_norm_class=_tf("phi3", "Phi3RMSNorm"),
            sliding_rule="config_window",
        ),
        ArchSpec(
            "olmo2",
            "model.layers.{i}.",
            "model.norm.",
            _tf("olmo2", "Olmo2DecoderLayer"),
            _tf("olmo2", "Olmo2RotaryEmbedding"),
            final_norm_class=_tf("olmo2", "Olmo2RMSNorm"),
        ),
        ArchSpec(
            "gpt_neox",
            "gpt_neox.layers.{i}.",
            "gpt_neox.final_layer_norm.",
            _tf("gpt_neox", "GPTNeoXLayer"),
            _tf("gpt_neox", "GPTNeoXRotaryEmbedding"),
            final_norm_class=_LAYER_NORM,
            norm_eps_attr="layer_norm_eps",
            cache_kwarg="layer_past",
            # Pythia-era checkpoints hold the old causal-mask buffers (GPTNeoXPreTrainedModel
            # ._keys_to_ignore_on_load_unexpected).
            ignored_tensors=(r"(.*\.)?rotary_emb\.inv_freq", r"attention\.bias", r"attention\.masked_bias"),
        ),
        ArchSpec(
            "falcon",
            "transformer.h.{i}.",
            "transformer.ln_f.",
            _tf("falcon", "FalconDecoderLayer"),
            # Falcon with alibi=True (Falcon-RW) builds the rotary module but never uses it.
            _tf("falcon", "FalconRotaryEmbedding"),
            final_norm_class=_LAYER_NORM,
            norm_eps_attr="layer_norm_epsilon",
            returns_tuple=True,
            materialize_mask=True,
            alibi_builder=_tf("falcon", "build_alibi_tensor"),
            cache_kwarg="layer_past",
        ),
        ArchSpec(
            "stablelm",
            "model.layers.{i}.",
            "model.norm.",
            _tf("stablelm", "StableLmDecoderLayer"),
            _tf("stablelm", "StableLmRotaryEmbedding"),
            final_norm_class=_LAYER_NORM,
            norm_eps_attr="layer_norm_eps",
        ),
    ]
}


def supported_model_types() -> list[str]:
    """Sorted names of every architecture pifi supports."""
    return sorted(ARCHITECTURES)


def arch_for_config(config: Mapping[str, Any]) -> ArchSpec:
    """The row for a model's ``config.json``; refuse unknown or remote-code models.

    An ``auto_map`` only matters when the model_type is not one transformers implements natively:
    many checkpoints of native architectures still carry one from their remote-code days (Phi-3,
    Falcon), and pifi always rebuilds the layer from transformers' own classes, never from the repo.
    """
    model_type = config.get("model_type")
    supported = ", ".join(supported_model_types())
    if not isinstance(model_type, str):  # a list or object in a crafted config.json: not hashable, not a name
        raise UnsupportedModelError(f"config.json's model_type is {type(model_type).__name__} {str(model_type)[:60]}, "
                                    "not an architecture name", f"supported architectures: {supported}")
    if config.get("auto_map") and model_type not in ARCHITECTURES:
        raise UnsupportedModelError(
            f"model_type {model_type!r} needs remote code (config.json has 'auto_map'), which pifi never runs",
            f"supported architectures: {supported}",
        )
    if model_type not in ARCHITECTURES:
        raise UnsupportedModelError(
            f"unsupported architecture model_type={model_type!r}",
            f"supported architectures: {supported}",
        )
    return ARCHITECTURES[model_type]
