"""The encoder-decoder PiFi model: SLM encoder -> L_in -> frozen LLM layer -> L_out -> SLM decoder.

The plug is installed AS the model's encoder (``set_encoder``), so the model's own ``forward``
and ``generate`` drive both arms with one decoding configuration, and every behaviour of the
SLM stays its own (T5's rescaling before the tied lm_head, BART's decoder start token).
``method="base"`` is the untouched ``AutoModelForSeq2SeqLM`` (plain fine-tuning).

The frozen layer is registered once, at ``Seq2SeqPifi.layer`` (:class:`pifi_train.plugged.PluggedModel`:
frozen, eval mode, out of checkpoints and DDP broadcasts, as in every family); the encoder wrapper only holds
a reference to it. ``Seq2SeqPifi.slm`` is the whole ``AutoModelForSeq2SeqLM`` (what ``--method lora`` wraps).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pifi_extract.errors import UnsupportedModelError

from ...options import ModelOptions
from ...plugged import PluggedModel
from ...slm import load_pretrained


class PluggedEncoder(nn.Module):
    """``encoder(input_ids, attention_mask)`` followed by L_in, the frozen layer, L_out: (B, T, H_slm)."""

    def __init__(self, encoder: nn.Module, hidden: int, layer: nn.Module, causal: bool, post_norm: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.l_in = nn.Linear(hidden, int(layer.hidden_size), bias=False)
        self.l_out = nn.Linear(int(layer.hidden_size), hidden, bias=False)
        self.__dict__["frozen"] = layer  # registered on Seq2SeqPifi, not here (no duplicate state-dict keys)
        self.causal, self.post_norm = causal, post_norm

    def __getattr__(self, name: str) -> Any:
        """Anything generate/the SLM reads off its encoder (main_input_name, config, ...): the inner encoder's."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["encoder"], name)

    # the SLM ties/reads embeddings through its encoder: delegate
    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.encoder.set_input_embeddings(value)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, **kwargs: Any) -> Any:
        kwargs["return_dict"] = True
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                           **kwargs)
        hidden = out.last_hidden_state  # (B, T, H_slm)
        mask = attention_mask if attention_mask is not None else torch.ones(
            hidden.shape[:2], dtype=torch.long, device=hidden.device)  # (B, T)
        layer = self.__dict__["frozen"]
        x = self.l_in(hidden)  # (B, T, H_llm)
        y = layer(x.to(layer.dtype), mask, causal=self.causal)  # (B, T, H_llm)
        if self.post_norm:
            y = layer.norm(y)
        out.last_hidden_state = self.l_out(y.to(hidden.dtype))  # (B, T, H_slm)
        return out


class Seq2SeqPifi(PluggedModel):
    """An ``AutoModelForSeq2SeqLM`` with (``method="pifi"``) the frozen layer plugged after its encoder."""

    def __init__(self, seq2seq: nn.Module, layer: nn.Module | None, options: ModelOptions) -> None:
        super().__init__()
        self.options = options
        self.slm = seq2seq
        self.slm_inputs = {"input_ids", "attention_mask"}
        if self.check_layer(layer, options.method, options.post_norm, options.train_layer):
            self.attach_layer(layer)
            hidden = int(seq2seq.config.d_model)
            seq2seq.set_encoder(PluggedEncoder(seq2seq.get_encoder(), hidden, layer, options.attention == "causal",
                                               options.post_norm))

    @property
    def plug(self) -> PluggedEncoder:
        return self.slm.get_encoder()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Decoder logits (B, L, V) with teacher forcing on ``labels`` (-100 = padding)."""
        return self.slm(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **decoding: Any) -> torch.Tensor:
        return self.slm.generate(input_ids=input_ids, attention_mask=attention_mask, **decoding)


def check_encoder_decoder(name: str, config: Any) -> Any:
    """Refuse an SLM that is not an encoder-decoder model (seq2seq runs need ``AutoModelForSeq2SeqLM``)."""
    if not getattr(config, "is_encoder_decoder", False):
        raise UnsupportedModelError(f"--slm {name} is not an encoder-decoder model ({config.model_type})",
                                    "seq2seq runs need T5, BART, mT5, ... (AutoModelForSeq2SeqLM)")
    return config


def load_seq2seq_slm(name: str, config: Any, pretrained: bool = True) -> nn.Module:
    """An ``AutoModelForSeq2SeqLM`` in fp32 (pretrained safetensors weights, or random from ``config``)."""
    from transformers import AutoModelForSeq2SeqLM

    return load_pretrained(AutoModelForSeq2SeqLM, name, check_encoder_decoder(name, config), pretrained)
