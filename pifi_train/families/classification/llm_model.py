"""``--method llm`` (the paper's Table 15): a frozen LLM layer with a classification head and no small model.

The LLM's own embedding rows (:class:`pifi_train.llm_rows.EmbeddingRows`, frozen) -> the frozen layer(s) over
the whole sequence with the LLM's causal attention (positions 0..T-1, padding on the right) -> optionally the
LLM's final norm (``--post-norm``) -> pooling (``auto``: the last real token, as a decoder) -> the head (the
same as PiFi's, on the LLM's hidden size). Only the head trains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ...options import ModelOptions
from ...plugged import PluggedModel
from .model import classification_head, pool, resolve_pooling

if TYPE_CHECKING:
    from ...llm_rows import EmbeddingRows


class LlmClassifier(PluggedModel):
    """Embedding rows -> frozen layer(s), causal -> pooled -> head."""

    slm_inputs = frozenset({"input_ids", "attention_mask"})  # what the collator passes on

    def __init__(self, embeddings: "EmbeddingRows", num_labels: int, options: ModelOptions, layer: torch.nn.Module) -> None:
        super().__init__()
        self.options = options
        self.embeddings = embeddings
        self.pooling = resolve_pooling(embeddings.config, options.pooling)
        self.check_layer(layer, options.method, options.post_norm, options.train_layer)
        self.attach_layer(layer)
        self.head = classification_head(int(layer.hidden_size), num_labels, options.dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **_: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) for a tokenized batch (token_type_ids and other tokenizer outputs mean nothing here)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)  # (B, T)
        x = self.embeddings(input_ids)  # (B, T, H_llm)
        y = self.through_layer(x, attention_mask, True, self.options.post_norm)  # (B, T, H_llm)
        return self.head(pool(y, attention_mask, self.pooling))  # (B, C)

    def frozen_parameter_names(self) -> list[str]:
        """The frozen layer and the embedding rows (buffers identical on every rank)."""
        return super().frozen_parameter_names() + ["embeddings.ids", "embeddings.rows"]
