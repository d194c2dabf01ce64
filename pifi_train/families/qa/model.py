"""The span model: SLM -> every token -> L_in -> frozen layer (padding mask) -> L_out -> start/end logits.

The frozen-layer handling (frozen, eval mode, never in a checkpoint) is :class:`pifi_train.plugged.PluggedModel`'s;
the head is ``Linear(H, 2)``. Positions outside
``answer_mask`` (padding, question, special tokens; CLS is allowed for v2's no-answer) get a logit of
``-1e4`` (fp16-safe), so they never win the argmax nor receive probability mass.
"""

from __future__ import annotations

import torch
from torch import nn

from ...options import ModelOptions
from ...plugged import PluggedModel, forward_input_names

MASKED = -1e4


class PifiSpanModel(PluggedModel):
    """``method="base"``: the SLM with the span head; ``pifi``: every token through the layer."""

    def __init__(self, slm: nn.Module, options: ModelOptions, layer) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.options = options
        self.slm = slm
        hidden = int(slm.config.hidden_size)
        self.slm_inputs = set(forward_input_names(slm))
        if self.check_layer(layer, options.method, options.post_norm, options.train_layer):
            self.l_in = nn.Linear(hidden, int(layer.hidden_size), bias=False)
            self.attach_layer(layer)
            self.l_out = nn.Linear(int(layer.hidden_size), hidden, bias=False)
        self.head = nn.Linear(hidden, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,  # type: ignore[override]
                answer_mask: torch.Tensor | None = None, **inputs: torch.Tensor) -> torch.Tensor:
        """Start/end logits (B, T, 2); ``answer_mask`` (B, T) bool: where an answer may start or end."""
        extra = {k: v for k, v in inputs.items() if k in self.slm_inputs}
        hidden = self.slm(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state  # (B,T,H)
        if self.has_layer:
            x = self.l_in(hidden)  # (B, T, H_llm)
            y = self.through_layer(x, attention_mask, self.options.attention == "causal",
                                   self.options.post_norm)  # (B, T, H_llm)
            hidden = self.l_out(y)  # (B, T, H)
        logits = self.head(hidden).float()  # (B, T, 2)
        allowed = attention_mask.bool() if answer_mask is None else answer_mask & attention_mask.bool()  # (B, T)
        return logits.masked_fill(~allowed.unsqueeze(-1), MASKED)


def span_loss(logits: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor,
              label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean of the start and end cross-entropies; logits (B, T, 2), positions (B,). Smoothing spreads only
    over the allowed positions (masked logits keep ~0 probability because they sit at -1e4)."""
    criterion = nn.CrossEntropyLoss(label_smoothing=0.0)
    if not label_smoothing:
        return (criterion(logits[..., 0], starts) + criterion(logits[..., 1], ends)) / 2
    total = logits.new_zeros(())
    for k, target in ((0, starts), (1, ends)):
        log_probs = torch.log_softmax(logits[..., k], dim=-1)  # (B, T)
        allowed = logits[..., k] > MASKED / 2  # (B, T)
        nll = -log_probs.gather(1, target[:, None])[:, 0]  # (B,)
        uniform = -(log_probs * allowed).sum(-1) / allowed.sum(-1).clamp_min(1)  # (B,)
        total = total + ((1 - label_smoothing) * nll + label_smoothing * uniform).mean()
    return total / 2
