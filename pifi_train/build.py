"""Building a run's model, the same way for training, resuming and predicting, in every family.

:func:`build_layer` turns the run's artifact(s) into the layer it trains with (the artifact's weights,
or ``--layer-init random``: its architecture's own init, seeded; ``--train-layer``: fp32 masters);
:func:`build_model` wraps the family's model around it and adds LoRA adapters for ``--method lora``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from .ablations import apply_lora, randomize_layer
from .config import TrainConfig
from .frozen_layer import load_layer
from .frozen_stack import FrozenStack
from .layer_ref import LayerIdentity


def load_frozen_layers(identities: Sequence[LayerIdentity], device: torch.device, dtype: torch.dtype) -> Any:
    """A FrozenLayer for one described artifact (hash already checked), a FrozenStack of them (in order) for
    several, on ``device`` in ``dtype``."""
    layers = [load_layer(identity.path, device=device, dtype=dtype, verify=False) for identity in identities]
    return layers[0] if len(layers) == 1 else FrozenStack(layers)


def build_layer(config: TrainConfig, layer: Sequence[LayerIdentity] | None, device: torch.device,
                layer_dtype: torch.dtype, seed: int) -> Any:
    """The run's LLM layer(s) with their ablations: a random layer (--layer-init random, seeded by ``seed``),
    a trainable fp32 layer (--train-layer); None for --method base / lora."""
    if layer is None:
        return None
    dtype = torch.float32 if config.train_layer else layer_dtype  # a trained layer keeps fp32 masters
    if config.layer_init == "random":  # initialised on the CPU in fp32: the same layer on every device
        frozen = randomize_layer(load_frozen_layers(layer, torch.device("cpu"), torch.float32), seed)
        return frozen.to(device=device, dtype=dtype)
    return load_frozen_layers(layer, device, dtype)


def build_model(config: TrainConfig, slm: Any, layer: Sequence[LayerIdentity] | None, device: torch.device,
                layer_dtype: torch.dtype, seed: int, make: Callable[[Any, Any], Any]) -> Any:
    """``make(slm, layer)`` (the family's model) around the run's layer (:func:`build_layer`), with LoRA
    adapters on its SLM (``model.slm``) for --method lora."""
    model = make(slm, build_layer(config, layer, device, layer_dtype, seed))
    if config.method == "lora":
        apply_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_targets)
    return model.to(device)
