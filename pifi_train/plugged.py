"""What every family's model shares about the frozen LLM layer: frozen means frozen, and never saved.

:class:`PluggedModel` is the base of the classifier, the QA span model and the encoder-decoder model.
The layer (a FrozenLayer or a FrozenStack) is registered at ``self.layer``; its parameters get no
gradient (``--train-layer``: they do, in fp32), it stays in eval mode whatever ``train()`` says (no
dropout, ever), and :meth:`trainable_state_dict` leaves it out of every checkpoint (with
``--train-layer`` it is saved). :meth:`frozen_parameter_names` is what DDP must not broadcast.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from pifi_extract.errors import ArtifactError, ConfigError

LAYER_PREFIX = "layer."


def forward_input_names(module: nn.Module) -> list[str]:
    """Keyword arguments the SLM's forward accepts (token_type_ids only where it exists)."""
    return list(inspect.signature(module.forward).parameters)


class PluggedModel(nn.Module):
    """A family's model with an optional frozen LLM layer at ``self.layer``."""

    train_layer: bool = False

    def check_layer(self, layer: Any, method: str, post_norm: bool, train_layer: bool) -> bool:
        """Whether the model plugs ``layer`` in (``method="pifi"``; it must then be given, and carry the
        LLM's final norm for ``post_norm``); remembers ``train_layer``."""
        self.train_layer = train_layer
        if method != "pifi":
            return False
        if layer is None:
            raise ConfigError("--method pifi needs a layer artifact (--layer-artifact)")
        if post_norm and getattr(layer, "final_norm", None) is None:
            raise ArtifactError("--post-norm needs the LLM's final norm, and this artifact has none")
        return True

    def attach_layer(self, layer: Any) -> None:
        """Register ``layer`` at ``self.layer``: frozen (unless ``train_layer``) and in eval mode."""
        self.layer = layer
        for param in layer.parameters():
            param.requires_grad_(self.train_layer)
        layer.eval()

    @property
    def has_layer(self) -> bool:
        return "layer" in self._modules

    def train(self, mode: bool = True) -> "PluggedModel":
        """Train everything but the frozen layer, which stays in eval mode (no dropout, ever)."""
        super().train(mode)
        if self.has_layer:
            self.layer.eval()
        return self

    def through_layer(self, x: torch.Tensor, mask: torch.Tensor, causal: bool, post_norm: bool) -> torch.Tensor:
        """(B, T, H_llm) -> (B, T, H_llm): the layer in its own dtype (then the LLM's final norm if
        ``post_norm``), back in the input's dtype."""
        out = self.layer(x.to(self.layer.dtype), mask, causal=causal)  # (B, T, H_llm)
        if post_norm:
            out = self.layer.norm(out)
        return out.to(x.dtype)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor of the state dict except the frozen layer's (what a checkpoint holds); with
        ``train_layer`` the layer's tensors too."""
        if self.train_layer:
            return dict(self.state_dict())
        return {k: v for k, v in self.state_dict().items() if not k.startswith(LAYER_PREFIX)}

    def frozen_parameter_names(self) -> list[str]:
        """Parameters and buffers identical on every rank that DDP must not broadcast (the frozen layer)."""
        if not self.has_layer or self.train_layer:
            return []
        return ([LAYER_PREFIX + name for name, _ in self.layer.named_parameters()]
                + [LAYER_PREFIX + name for name, _ in self.layer.named_buffers()])
