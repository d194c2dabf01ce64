"""Several frozen decoder layers run one after the other (the paper's Table 14: two LLM layers).

:class:`FrozenStack` has FrozenLayer's interface (``forward(x, mask, causal=)``, ``hidden_size``,
``dtype``, ``final_norm`` / ``norm``, ``num_parameters``), so :class:`~pifi_train.families.classification.model.SequenceClassifier`
uses it unchanged. It is only built for two or more artifacts; one artifact stays a plain
FrozenLayer. The layers may come from different models but must share one hidden size.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from pifi_extract.errors import ConfigError

from .frozen_layer import FrozenLayer


class FrozenStack(nn.Module):
    """Frozen layers applied in order: ``(B, T, H) -> (B, T, H)``, always in eval mode.

    Every layer sees the same padding mask, positions and ``causal`` flag. The final norm
    (``--post-norm``, applied by the model through :meth:`norm`) is the LAST layer's model's.
    """

    def __init__(self, layers: Sequence[FrozenLayer]) -> None:
        super().__init__()
        if len(layers) < 2:
            raise ConfigError(f"a frozen stack needs at least two layers, got {len(layers)}")
        sizes = [layer.hidden_size for layer in layers]
        if len(set(sizes)) != 1:
            raise ConfigError(f"the frozen layers have different hidden sizes ({', '.join(map(str, sizes))})",
                              "every --layer-artifact must have the same hidden size")
        self.layers = nn.ModuleList(layers)
        for param in self.parameters():
            param.requires_grad_(False)
        super().train(False)

    @property
    def hidden_size(self) -> int:
        return self.layers[0].hidden_size

    @property
    def dtype(self) -> torch.dtype:
        return self.layers[0].dtype

    @property
    def device(self) -> torch.device:
        return self.layers[0].device

    @property
    def num_parameters(self) -> int:
        """Parameters of the decoder layers (final norms not counted)."""
        return sum(layer.num_parameters for layer in self.layers)

    @property
    def final_norm(self) -> nn.Module | None:
        """The last layer's model's final norm (None when its artifact has none)."""
        return self.layers[-1].final_norm

    def train(self, mode: bool = True) -> "FrozenStack":  # noqa: ARG002 - always eval
        return super().train(False)

    def extra_repr(self) -> str:
        return f"num_layers={len(self.layers)}"

    def forward(
        self,
        hidden_states: torch.Tensor,  # (B, T, H)
        attention_mask: torch.Tensor | None = None,  # (B, T): 1 token, 0 padding
        causal: bool = True,
        *,
        position_ids: torch.Tensor | None = None,  # (1 or B, T); default 0..T-1
    ) -> torch.Tensor:  # (B, T, H)
        """Run every layer in order with the same mask, positions and ``causal``."""
        x = hidden_states  # (B, T, H)
        for layer in self.layers:
            x = layer(x, attention_mask, causal=causal, position_ids=position_ids)  # (B, T, H)
        return x

    def norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The last layer's model's final norm applied to ``hidden_states`` (B, T, H)."""
        return self.layers[-1].norm(hidden_states)
