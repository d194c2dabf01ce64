"""The encoder-decoder PiFi model: SLM encoder -> L_in -> frozen LLM layer -> L_out -> SLM decoder.

The plug is installed AS the model's encoder (``set_encoder``), so the model's own ``forward``
and ``generate`` drive both arms with one decoding configuration, and every behaviour of the
SLM stays its own (T5's rescaling before the tied lm_head, BART's decoder start token).
``method="base"`` is the untouched ``AutoModelForSeq2SeqLM`` (plain fine-tuning).

The frozen layer is registered once, at ``Seq2SeqPifi.layer`` (so checkpoints and DDP skip the
``layer.`` prefix as for classification); the encoder wrapper only holds a reference to it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pifi_extract.errors import ArtifactError, ConfigError

ATTENTIONS = ("bidirectional", "causal")


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


class Seq2SeqPifi(nn.Module):
    """An ``AutoModelForSeq2SeqLM`` with (``method="pifi"``) the frozen layer plugged after its encoder."""

    def __init__(self, seq2seq: nn.Module, layer: nn.Module | None, method: str = "pifi",
                 attention: str = "bidirectional", post_norm: bool = False) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ConfigError(f"--attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        self.method = method
        self.seq2seq = seq2seq
        self.slm_inputs = {"input_ids", "attention_mask"}
        if method == "pifi":
            if layer is None:
                raise ConfigError("--method pifi needs a layer artifact (--layer-artifact)")
            if post_norm and getattr(layer, "final_norm", None) is None:
                raise ArtifactError("--post-norm needs the LLM's final norm, and this artifact has none")
            self.layer = layer
            for param in layer.parameters():
                param.requires_grad_(False)
            layer.eval()
            hidden = int(seq2seq.config.d_model)
            seq2seq.set_encoder(PluggedEncoder(seq2seq.get_encoder(), hidden, layer, attention == "causal",
                                               post_norm))

    @property
    def has_layer(self) -> bool:
        return self.method == "pifi"

    @property
    def plug(self) -> PluggedEncoder:
        return self.seq2seq.get_encoder()

    def train(self, mode: bool = True) -> "Seq2SeqPifi":
        """Train everything but the frozen layer (always eval: no dropout)."""
        super().train(mode)
        if self.has_layer:
            self.layer.eval()
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Decoder logits (B, L, V) with teacher forcing on ``labels`` (-100 = padding)."""
        return self.seq2seq(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **decoding: Any) -> torch.Tensor:
        return self.seq2seq.generate(input_ids=input_ids, attention_mask=attention_mask, **decoding)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor except the frozen layer's (what a checkpoint holds)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("layer.")}


def load_seq2seq_slm(name: str, config: Any | None = None, pretrained: bool = True) -> nn.Module:
    """An ``AutoModelForSeq2SeqLM`` in fp32 (pretrained, or random from ``config``); no remote code."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    from ..slm import _translate
    from pifi_extract.errors import UnsupportedModelError

    try:
        config = config if config is not None else AutoConfig.from_pretrained(name, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise _translate(name, err) from err
    if not getattr(config, "is_encoder_decoder", False):
        raise UnsupportedModelError(f"--slm {name} is not an encoder-decoder model ({config.model_type})",
                                    "seq2seq runs need T5, BART, mT5, ... (AutoModelForSeq2SeqLM)")
    try:
        if pretrained:
            return AutoModelForSeq2SeqLM.from_pretrained(name, config=config, dtype=torch.float32,
                                                         trust_remote_code=False)
        return AutoModelForSeq2SeqLM.from_config(config, dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise _translate(name, err) from err
