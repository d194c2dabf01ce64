"""What pifi knows about each architecture, as data, in one place.

Everything architecture-specific — where a layer's tensors live in a checkpoint,
where the final norm lives, which transformers classes rebuild and run the layer,
which extra arguments its forward takes — is an :class:`ArchSpec` row in
:data:`ARCHITECTURES`. Code elsewhere looks rows up; it never branches on
``model_type``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import UnsupportedModelError


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
    # Extra, architecture-specific facts the layer builder needs (see pifi_train.frozen_layer).
    extras: Mapping[str, Any] = field(default_factory=dict)

    def layer_tensor_prefix(self, index: int) -> str:
        """The checkpoint prefix of layer ``index`` (already resolved, non-negative)."""
        return self.layer_prefix.format(i=index)


def _tf(module: str, name: str) -> str:
    return f"transformers.models.{module}.modeling_{module}.{name}"


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.model_type: spec
    for spec in [
        ArchSpec(
            "llama",
            "model.layers.{i}.",
            "model.norm.",
            _tf("llama", "LlamaDecoderLayer"),
            _tf("llama", "LlamaRotaryEmbedding"),
        ),
    ]
}


def supported_model_types() -> list[str]:
    """Sorted names of every architecture pifi supports."""
    return sorted(ARCHITECTURES)


def arch_for_config(config: Mapping[str, Any]) -> ArchSpec:
    """The row for a model's ``config.json``; refuse unknown or remote-code models."""
    model_type = config.get("model_type")
    supported = ", ".join(supported_model_types())
    if config.get("auto_map"):
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
