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
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from .errors import UnsupportedModelError

#: How the model picks a layer's causal mask.
#: ``"none"``: always ``create_causal_mask``.
#: ``"config_window"``: ``create_sliding_window_causal_mask`` for every layer when
#: ``config.sliding_window`` is not None (Mistral, Phi-3).
#: ``"layer_types"``: per layer, sliding when ``config.layer_types[i] == "sliding_attention"``
#: (Qwen2/3, Gemma-2/3).
SlidingRule = Literal["none", "config_window", "layer_types"]


_LAYER_NORM = "torch.nn.LayerNorm"


@dataclass(frozen=True)
class ArchSpec:
    """How to find, rebuild and run one decoder layer of an architecture.

    A row names only what is special about its architecture: the defaults are the common layout
    (``model.layers.{i}.``, ``model.norm.``) and the classes of transformers' module for it, named
    from ``stem``: ``<stem>DecoderLayer``, ``<stem>RotaryEmbedding`` and ``<stem>RMSNorm`` in
    ``transformers.models.<module>.modeling_<module>`` (``module`` defaults to the model_type).
    A class given without dots is looked up in that module; a dotted one is taken as it is.
    """

    model_type: str
    # Class-name stem of the architecture in transformers ("Llama", "GPTNeoX", "StableLm").
    stem: str
    # transformers module (transformers.models.<module>.modeling_<module>); "" means the model_type.
    module: str = ""
    # Checkpoint name prefix of layer i.
    layer_prefix: str = "model.layers.{i}."
    # Checkpoint name prefix of the final norm applied after the last layer.
    final_norm_prefix: str = "model.norm."
    # The transformers decoder layer class ("" means <stem>DecoderLayer); dotted once built.
    layer_class: str = ""
    # The model-level rotary embedding class ("" means <stem>RotaryEmbedding; None: no rotary).
    rotary_class: str | None = ""
    # The final norm class ("" means <stem>RMSNorm); built as cls(hidden_size, eps=config.<norm_eps_attr>).
    final_norm_class: str = ""
    # Config attribute holding the number of layers.
    num_layers_attr: str = "num_hidden_layers"
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
    # The model's ALiBi builder. When set, the layer's forward takes a required ``alibi`` argument:
    # None unless config.<alibi_attr> is true, in which case the model builds it from the padding
    # mask and folds it into the attention mask (Falcon-RW).
    alibi_builder: str | None = None
    alibi_attr: str = "alibi"
    # Config flag that makes the model itself bidirectional (EmbeddingGemma), and the overlay the
    # model then ORs into its sliding-window mask.
    bidirectional_flag_attr: str | None = None
    bidirectional_window_overlay: str | None = None
    # Layer-relative names (regex, full match) of stale tensors some checkpoints still hold but the
    # layer class no longer has (old buffers); skipped when extracting and loading, as transformers'
    # ``_keys_to_ignore_on_load_unexpected`` does.
    ignored_tensors: tuple[str, ...] = (r"(.*\.)?rotary_emb\.inv_freq",)
    # Checkpoint name of the token embedding matrix (vocab, hidden), and what the model multiplies the
    # looked-up rows by: None, or "sqrt_hidden" (Gemma: sqrt(hidden_size), rounded to the weights' dtype).
    embedding_name: str = "model.embed_tokens.weight"
    embedding_scale: Literal["sqrt_hidden"] | None = None

    def __post_init__(self) -> None:
        module = self.module or self.model_type
        base = f"transformers.models.{module}.modeling_{module}."

        def dotted(name: str | None) -> str | None:
            return name if name is None or "." in name else base + name

        object.__setattr__(self, "module", module)
        object.__setattr__(self, "layer_class", dotted(self.layer_class or f"{self.stem}DecoderLayer"))
        if self.rotary_class is not None:
            object.__setattr__(self, "rotary_class", dotted(self.rotary_class or f"{self.stem}RotaryEmbedding"))
        object.__setattr__(self, "final_norm_class", dotted(self.final_norm_class or f"{self.stem}RMSNorm"))
        object.__setattr__(self, "alibi_builder", dotted(self.alibi_builder))
        object.__setattr__(self, "bidirectional_window_overlay", dotted(self.bidirectional_window_overlay))

    def layer_tensor_prefix(self, index: int) -> str:
        """The checkpoint prefix of layer ``index`` (already resolved, non-negative)."""
        return self.layer_prefix.format(i=index)

    def is_ignored_tensor(self, relative_name: str) -> bool:
        """Whether a layer-relative tensor name is a stale buffer to skip (see ``ignored_tensors``)."""
        return any(re.fullmatch(pattern, relative_name) for pattern in self.ignored_tensors)


def import_object(dotted: str) -> Any:
    """Import ``package.module.Name`` lazily (keeps ``import pifi_extract`` light)."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.model_type: spec
    for spec in [
        ArchSpec("llama", "Llama"),
        ArchSpec("mistral", "Mistral", sliding_rule="config_window"),
        ArchSpec("qwen2", "Qwen2", sliding_rule="layer_types"),
        ArchSpec("qwen3", "Qwen3", sliding_rule="layer_types"),
        ArchSpec(
            "gemma2",
            "Gemma2",
            attn_implementation="eager",  # _supports_sdpa = False: sdpa has no logit softcapping
            sliding_rule="layer_types",
            embedding_scale="sqrt_hidden",
        ),
        ArchSpec(
            "gemma3_text",
            "Gemma3",
            module="gemma3",
            sliding_rule="layer_types",
            rotary_takes_layer_type=True,
            embedding_scale="sqrt_hidden",
            bidirectional_flag_attr="use_bidirectional_attention",
            bidirectional_window_overlay="_bidirectional_window_overlay",
        ),
        ArchSpec("phi3", "Phi3", sliding_rule="config_window"),
        ArchSpec("olmo2", "Olmo2"),
        ArchSpec(
            "gpt_neox",
            "GPTNeoX",
            layer_prefix="gpt_neox.layers.{i}.",
            final_norm_prefix="gpt_neox.final_layer_norm.",
            layer_class="GPTNeoXLayer",
            final_norm_class=_LAYER_NORM,
            norm_eps_attr="layer_norm_eps",
            embedding_name="gpt_neox.embed_in.weight",
            # Pythia-era checkpoints hold the old causal-mask buffers (GPTNeoXPreTrainedModel
            # ._keys_to_ignore_on_load_unexpected).
            ignored_tensors=(r"(.*\.)?rotary_emb\.inv_freq", r"attention\.bias", r"attention\.masked_bias"),
        ),
        ArchSpec(
            "falcon",
            "Falcon",
            layer_prefix="transformer.h.{i}.",
            final_norm_prefix="transformer.ln_f.",
            # Falcon with alibi=True (Falcon-RW) builds the rotary module but never uses it.
            final_norm_class=_LAYER_NORM,
            norm_eps_attr="layer_norm_epsilon",
            returns_tuple=True,
            materialize_mask=True,
            alibi_builder="build_alibi_tensor",
            embedding_name="transformer.word_embeddings.weight",
        ),
        ArchSpec("stablelm", "StableLm", final_norm_class=_LAYER_NORM, norm_eps_attr="layer_norm_eps"),
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
