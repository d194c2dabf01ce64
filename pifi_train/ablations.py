"""The paper's ablations that change the model: PiFi-Random (Table 5) and the LoRA baseline (Table 18).

:func:`randomize_layer` re-initialises a frozen layer (or every layer of a stack) in place with
its architecture's own transformers init (``PreTrainedModel._init_weights``), seeded, on the CPU
in fp32 so that ``pifi predict`` rebuilds the very same layer from the run's seed.
:func:`apply_lora` wraps the SLM of a ``--method lora`` model with peft LoRA adapters
(``pifi[lora]``); the head stays fully trainable.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from pifi_extract.errors import ConfigError


def _pretrained_class(layer_class: str) -> Any:
    """The ``*PreTrainedModel`` class of the module that defines the architecture's decoder layer."""
    from transformers import PreTrainedModel

    module = importlib.import_module(layer_class.rsplit(".", 1)[0])
    for name in dir(module):
        value = getattr(module, name)
        if name.endswith("PreTrainedModel") and isinstance(value, type) and issubclass(value, PreTrainedModel):
            return value
    return PreTrainedModel


def randomize_layer(frozen: Any, seed: int) -> Any:
    """Re-initialise ``frozen`` (a FrozenLayer or FrozenStack) in place as its model's init would; returns it."""
    layers = list(getattr(frozen, "layers", [frozen]))
    for offset, layer in enumerate(layers):
        owner_class = _pretrained_class(layer.spec.layer_class)
        owner = owner_class.__new__(owner_class)  # only ``config`` is read by _init_weights
        owner.__dict__["config"] = layer.config
        device, dtype = layer.device, layer.dtype
        layer.layer.to(device="cpu", dtype=torch.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + offset)
            with torch.no_grad():
                for module in layer.layer.modules():
                    owner._init_weights(module)
        layer.layer.to(device=device, dtype=dtype)
        layer.layer.requires_grad_(False)
    return frozen


def apply_lora(model: nn.Module, r: int, alpha: int, dropout: float, targets: str | None) -> int:
    """Wrap ``model.slm`` with LoRA adapters; returns the SLM's trainable parameters as peft counts them."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ConfigError("--method lora needs the optional 'peft' library", "pip install 'pifi[lora]'") from err
    modules = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
    try:
        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=modules)
        model.slm = get_peft_model(model.slm, config)
    except ValueError as err:
        first = (str(err).strip().splitlines() or ["?"])[0][:200]
        raise ConfigError(f"--method lora: {first}", "name the SLM's attention projections with --lora-targets "
                                                     "(e.g. query,value for BERT, q_proj,v_proj for llama)") from err
    trainable, _ = model.slm.get_nb_trainable_parameters()
    return int(trainable)
