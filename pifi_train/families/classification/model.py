"""The PiFi classifier: small LM -> pooled token -> L_in -> frozen LLM layer -> L_out -> head.

``method="base"`` is the same model without L_in / layer / L_out (the paper's
baseline). ``plug="cls"`` (the paper) sends only the pooled vector through the
layer as a length-1 sequence; ``plug="sequence"`` sends every token (padding mask,
positions 0..T-1, causal or bidirectional attention) and pools afterwards.
The frozen layer never trains: no gradients for its parameters, always in eval
mode, kept in its own dtype while gradients flow through it. Ablations (Tables 5, 11, 18):
``train_layer=True`` makes its parameters trainable (still in eval mode: no dropout) and
puts them into :meth:`SequenceClassifier.trainable_state_dict`; ``method="lora"`` is the base model
whose SLM :func:`pifi_train.ablations.apply_lora` wraps with adapters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pifi_extract.errors import ConfigError

from ...options import ModelOptions
from ...plugged import PluggedModel, forward_input_names

if TYPE_CHECKING:
    from ...frozen_layer import FrozenLayer
    from ...frozen_stack import FrozenStack

def is_decoder_only(slm_config: Any) -> bool:
    """True for causal-LM-only architectures (llama, SmolLM2, gpt2...), false for encoders (BERT...)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = getattr(slm_config, "model_type", None)
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def resolve_pooling(slm_config: Any, pooling: str) -> str:
    """``first`` (encoders' CLS) or ``last`` (the last non-pad token, decoder SLMs) for ``auto``."""
    if pooling != "auto":
        return pooling
    return "last" if is_decoder_only(slm_config) else "first"


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, H) -> (B, H): the first token, or the last token whose mask is 1 (any padding side)."""
    if how == "first":
        return hidden[:, 0]
    positions = torch.arange(hidden.shape[1], device=hidden.device)  # (T,)
    last = (attention_mask.to(positions.dtype) * positions).argmax(dim=1)  # (B,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class SequenceClassifier(PluggedModel):
    """SLM + (L_in, frozen layer, L_out) + classification head.

    ``layer`` is a FrozenLayer, or a FrozenStack of several run in order (same interface);
    ``--post-norm`` applies its (last layer's) final norm once, after it. The transformers-facing
    subclass is :class:`pifi_train.pretrained.PifiModel`."""

    def __init__(self, slm: nn.Module, num_labels: int, options: ModelOptions,
                 layer: "FrozenLayer | FrozenStack | None") -> None:
        super().__init__()
        self.options = options
        self.slm = slm
        hidden = int(slm.config.hidden_size)
        self.pooling = resolve_pooling(slm.config, options.pooling)
        self.slm_inputs = set(forward_input_names(slm))
        if self.check_layer(layer, options.method, options.post_norm, options.train_layer):
            # registered in the authors' order (L_in, layer, L_out, head): same init and parameter order
            self.l_in = nn.Linear(hidden, int(layer.hidden_size), bias=False)
            self.attach_layer(layer)
            self.l_out = nn.Linear(int(layer.hidden_size), hidden, bias=False)
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden), nn.Dropout(options.dropout), nn.GELU(), nn.Linear(hidden, num_labels)
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **inputs: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) for a tokenized batch."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)  # (B, T)
        return self._logits(input_ids, attention_mask, **inputs)

    def _logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) for a tokenized batch."""
        extra = {k: v for k, v in inputs.items() if k in self.slm_inputs}
        hidden = self.slm(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state  # (B,T,H)
        if not self.has_layer:
            return self.head(pool(hidden, attention_mask, self.pooling))
        if self.options.plug == "cls":
            pooled = pool(hidden, attention_mask, self.pooling)  # (B, H)
            x = self.l_in(pooled).unsqueeze(1)  # (B, 1, H_llm)
            ones = torch.ones(x.shape[:2], dtype=attention_mask.dtype, device=x.device)  # (B, 1)
            y = self.through_layer(x, ones, False, self.options.post_norm)[:, 0]  # (B, H_llm)
        else:
            x = self.l_in(hidden)  # (B, T, H_llm)
            y = self.through_layer(x, attention_mask, self.options.attention == "causal", self.options.post_norm)
            y = pool(y, attention_mask, self.pooling)  # (B, H_llm)
        return self.head(self.l_out(y))
