"""The PiFi classifier: small LM -> pooled token -> L_in -> frozen LLM layer -> L_out -> head.

``method="base"`` is the same model without L_in / layer / L_out (the paper's
baseline). ``plug="cls"`` (the paper) sends only the pooled vector through the
layer as a length-1 sequence; ``plug="sequence"`` sends every token (padding mask,
positions 0..T-1, causal or bidirectional attention) and pools afterwards.
The frozen layer never trains: no gradients for its parameters, always in eval
mode, kept in its own dtype while gradients flow through it. Ablations (Tables 5, 11, 18):
``train_layer=True`` makes its parameters trainable (still in eval mode: no dropout) and
puts them into :meth:`PifiModel.trainable_state_dict`; ``method="lora"`` is the base model
whose SLM :func:`pifi_train.ablations.apply_lora` wraps with adapters.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pifi_extract.errors import ArtifactError, ConfigError

if TYPE_CHECKING:
    from .frozen_layer import FrozenLayer
    from .frozen_stack import FrozenStack

METHODS = ("pifi", "base", "lora")  # lora: the SLM with peft LoRA adapters, no layer (Table 18)
PLUGS = ("cls", "sequence")
ATTENTIONS = ("bidirectional", "causal")
POOLINGS = ("auto", "first", "last")


@dataclass(frozen=True)
class ModelOptions:
    """How the classifier is wired (every field is a CLI option)."""

    method: str = "pifi"
    plug: str = "cls"
    attention: str = "bidirectional"
    post_norm: bool = False
    pooling: str = "auto"
    dropout: float = 0.2
    train_layer: bool = False  # Table 11: the layer trains too (and is saved with the checkpoint)

    def __post_init__(self) -> None:
        for name, allowed in (("method", METHODS), ("plug", PLUGS), ("attention", ATTENTIONS),
                              ("pooling", POOLINGS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"--{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def forward_input_names(module: nn.Module) -> list[str]:
    """Keyword arguments the SLM's forward accepts (token_type_ids only where it exists)."""
    return list(inspect.signature(module.forward).parameters)


class PifiModel(nn.Module):
    """SLM + (L_in, frozen layer, L_out) + classification head.

    ``layer`` is a FrozenLayer, or a FrozenStack of several run in order (same interface);
    ``--post-norm`` applies its (last layer's) final norm once, after it.

    Inside ``transformers.Trainer``: ``forward(..., labels=)`` returns a ``SequenceClassifierOutput`` whose loss
    uses ``label_smoothing``; :meth:`from_slm` / :meth:`save_pretrained` / :meth:`from_pretrained` keep the layer
    by reference (:mod:`pifi_train.pretrained`)."""

    label_smoothing: float = 0.0  # the loss of forward(labels=...); pifi's own trainer computes its loss itself

    def __init__(self, slm: nn.Module, num_labels: int, options: ModelOptions,
                 layer: "FrozenLayer | FrozenStack | None") -> None:
        super().__init__()
        self.options = options
        self.slm = slm
        hidden = int(slm.config.hidden_size)
        self.pooling = resolve_pooling(slm.config, options.pooling)
        self.slm_inputs = set(forward_input_names(slm))
        if options.method == "pifi":
            if layer is None:
                raise ConfigError("--method pifi needs a layer artifact (--layer-artifact)")
            if options.post_norm and getattr(layer, "final_norm", None) is None:
                raise ArtifactError("--post-norm needs the LLM's final norm, and this artifact has none")
            self.l_in = nn.Linear(hidden, int(layer.hidden_size), bias=False)
            self.layer = layer
            self.l_out = nn.Linear(int(layer.hidden_size), hidden, bias=False)
            for param in self.layer.parameters():
                param.requires_grad_(options.train_layer)
            self.layer.eval()
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden), nn.Dropout(options.dropout), nn.GELU(), nn.Linear(hidden, num_labels)
        )

    @property
    def has_layer(self) -> bool:
        return self.options.method == "pifi"

    def train(self, mode: bool = True) -> "PifiModel":
        """Train everything but the frozen layer, which stays in eval mode (no dropout, ever)."""
        super().train(mode)
        if self.has_layer:
            self.layer.eval()
        return self

    def _through_layer(self, x: torch.Tensor, mask: torch.Tensor, causal: bool) -> torch.Tensor:
        """(B, T, H_llm) -> (B, T, H_llm) in the layer's dtype, back in the input's dtype."""
        out = self.layer(x.to(self.layer.dtype), mask, causal=causal)  # (B, T, H_llm)
        if self.options.post_norm:
            out = self.layer.norm(out)
        return out.to(x.dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, return_dict: bool | None = None, **inputs: torch.Tensor) -> Any:
        """Logits (B, C) for a tokenized batch; with ``labels`` (B,) or ``return_dict``: a transformers
        ``SequenceClassifierOutput`` (label-smoothed cross-entropy loss, logits)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)  # (B, T)
        logits = self._logits(input_ids, attention_mask, **inputs)  # (B, C)
        if labels is None and not return_dict:
            return logits
        from transformers.modeling_outputs import SequenceClassifierOutput

        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.to(logits.device).long(),
                                               label_smoothing=self.label_smoothing)
        return SequenceClassifierOutput(loss=loss, logits=logits)

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
            y = self._through_layer(x, ones, causal=False)[:, 0]  # (B, H_llm)
        else:
            x = self.l_in(hidden)  # (B, T, H_llm)
            y = self._through_layer(x, attention_mask, causal=self.options.attention == "causal")
            y = pool(y, attention_mask, self.pooling)  # (B, H_llm)
        return self.head(self.l_out(y))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor of the state dict except the frozen layer's (what a checkpoint holds);
        with ``train_layer`` the layer's tensors too."""
        if self.options.train_layer:
            return dict(self.state_dict())
        return {k: v for k, v in self.state_dict().items() if not k.startswith("layer.")}

    @classmethod
    def from_slm(cls, slm: str, layer_artifact: str | list[str] | None, num_labels: int = 2, **kw: Any) -> "PifiModel":
        """A new PiFi classifier for ``transformers.Trainer`` (see :func:`pifi_train.pretrained.from_slm`)."""
        from .pretrained import from_slm

        return from_slm(slm, layer_artifact, num_labels, **kw)

    @classmethod
    def from_pretrained(cls, folder: str, **kw: Any) -> "PifiModel":
        """Reload what :meth:`save_pretrained` wrote (or a pifi run directory); the layer is sha256-checked."""
        from .pretrained import from_pretrained

        return from_pretrained(folder, **kw)

    def save_pretrained(self, folder: str, **kw: Any) -> None:
        """The trainable tensors, SLM config, tokenizer and the layer's reference (never its tensors)."""
        from .pretrained import save_pretrained

        save_pretrained(self, folder, **kw)

    def frozen_parameter_names(self) -> list[str]:
        if not self.has_layer or self.options.train_layer:
            return []
        return [f"layer.{name}" for name, _ in self.layer.named_parameters()]
