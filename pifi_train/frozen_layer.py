"""One frozen decoder layer of an LLM, rebuilt from its tensors and run as its model runs it.

:func:`build_frozen_layer` instantiates only the transformers decoder layer class of the
architecture (on the meta device, then the given tensors are assigned: no random init, no
copy of the rest of the model), the model's own rotary embedding module from the config, and
optionally the model's final norm. :class:`FrozenLayer` feeds the layer what the model's
``forward`` would: rotary embeddings of positions 0..T-1 and the mask built by
``transformers.masking_utils`` for that layer's attention type (see :mod:`pifi_train.masks`).
:func:`load_layer` does the same from a pifi artifact file.

Positions: the HF model, called without ``position_ids``, uses 0..T-1 for every row whatever
the padding (only ``generate`` derives positions from the mask); FrozenLayer does the same, so
with left padding the first real token of a row sits at position (number of pads). Pass
``position_ids`` to choose otherwise.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from pifi_extract.architectures import ArchSpec, arch_for_config, import_object
from pifi_extract.errors import ArtifactError, ConfigError
from pifi_extract.plan import resolve_layer_index

from .masks import build_alibi, build_layer_mask, layer_type_of

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


class FrozenLayer(nn.Module):
    """A frozen decoder layer: ``(B, T, H) -> (B, T, H)``, always in eval mode.

    Gradients flow through it to its input; its parameters never require grad. ``train()``
    is a no-op for it (dropout inside the layer stays off), so a parent model can switch
    modes freely.
    """

    def __init__(
        self,
        spec: ArchSpec,
        config: Any,
        layer_index: int,
        layer: nn.Module,
        rotary_emb: nn.Module | None,
        final_norm: nn.Module | None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.config = config
        self._layer_index = layer_index
        self.layer = layer
        self.final_norm = final_norm  # applied by the model (--post-norm) through norm()
        # The rotary module is held outside the module tree: its inv_freq buffers must stay fp32
        # (a parent's .half()/.to(bfloat16) would otherwise round them); forward moves it to the
        # input's device when needed.
        self.__dict__["rotary_emb"] = rotary_emb
        for param in self.parameters():
            param.requires_grad_(False)
        super().train(False)

    # -- properties ---------------------------------------------------------------------------
    @property
    def model_type(self) -> str:
        return self.spec.model_type

    @property
    def layer_index(self) -> int:
        return self._layer_index

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def layer_type(self) -> str | None:
        """``"sliding_attention"``/``"full_attention"`` for models with per-layer types, else None."""
        return layer_type_of(self.config, self._layer_index)

    @property
    def num_parameters(self) -> int:
        """Parameters of the decoder layer (the final norm not counted)."""
        return sum(p.numel() for p in self.layer.parameters())

    @property
    def dtype(self) -> torch.dtype:
        return next(self.layer.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.layer.parameters()).device

    def train(self, mode: bool = True) -> "FrozenLayer":  # noqa: ARG002 - always eval
        return super().train(False)

    def extra_repr(self) -> str:
        return (
            f"model_type={self.model_type}, layer_index={self.layer_index}, "
            f"attn={self.config._attn_implementation}"
        )

    # -- compute ------------------------------------------------------------------------------
    def forward(
        self,
        hidden_states: torch.Tensor,  # (B, T, H)
        attention_mask: torch.Tensor | None = None,  # (B, T): 1 token, 0 padding
        causal: bool = True,
        *,
        position_ids: torch.Tensor | None = None,  # (1 or B, T); default 0..T-1
    ) -> torch.Tensor:  # (B, T, H)
        """Run the layer. ``causal=True`` reproduces the model exactly (its causal or
        sliding-window mask, with padding); ``causal=False`` lets every token attend to every
        non-padding token (within the window for sliding layers)."""
        if hidden_states.ndim != 3 or hidden_states.shape[-1] != self.hidden_size:
            raise ConfigError(
                f"FrozenLayer expects hidden states of shape (B, T, {self.hidden_size}), "
                f"got {tuple(hidden_states.shape)}"
            )
        input_dtype = hidden_states.dtype
        x = hidden_states.to(self.dtype)  # (B, T, H)
        batch, length, _ = x.shape
        if position_ids is None:
            position_ids = torch.arange(length, device=x.device).unsqueeze(0)  # (1, T)
        mask = build_layer_mask(self.spec, self.config, self._layer_index, x, attention_mask, position_ids, causal)
        alibi, mask = build_alibi(self.spec, self.config, x, attention_mask, mask)
        kwargs: dict[str, Any] = {
            "attention_mask": mask,
            "position_ids": position_ids,
            "position_embeddings": self._rotary(x, position_ids),
        }
        if self.spec.alibi_builder is not None:
            kwargs["alibi"] = alibi
        out = self.layer(x, **kwargs)
        if self.spec.returns_tuple:
            out = out[0]
        return out.to(input_dtype)

    def norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The model's final norm applied to ``hidden_states`` (B, T, H)."""
        if self.final_norm is None:
            raise ConfigError(
                "this frozen layer carries no final norm",
                "extract the artifact again with a pifi version that stores it",
            )
        return self.final_norm(hidden_states)

    def _rotary(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        rotary = self.__dict__["rotary_emb"]
        if rotary is None:
            return None
        buffer = next(rotary.buffers(), None)
        if buffer is not None and buffer.device != x.device:
            rotary.to(x.device)
        if self.spec.rotary_takes_layer_type:
            return rotary(x, position_ids, self.layer_type)  # (1, T, d) cos, sin
        return rotary(x, position_ids)


def make_config(config: Mapping[str, Any] | Any) -> Any:
    """A fresh transformers config object from a config.json dict (or a copy of a config)."""
    if not isinstance(config, Mapping):
        return copy.deepcopy(config)
    from transformers import AutoConfig

    values = dict(config)
    model_type = values.pop("model_type", None)
    arch_for_config({**values, "model_type": model_type})  # refuse unknown/remote-code first
    return AutoConfig.for_model(model_type, **values)


def build_frozen_layer(
    config: Mapping[str, Any] | Any,
    layer_index: int,
    layer_state: Mapping[str, torch.Tensor],
    *,
    final_norm_state: Mapping[str, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
) -> FrozenLayer:
    """Rebuild layer ``layer_index`` of the model described by ``config`` from its tensors.

    ``layer_state`` holds the layer's tensors with layer-relative names (``self_attn.q_proj.weight``);
    it must match the layer class exactly (strict). ``dtype`` None keeps the tensors' dtype.
    ``attn_implementation`` None uses the model's default (sdpa, or eager for Gemma-2).
    """
    cfg, spec, layer_index = _layer_config(config, layer_index, attn_implementation)
    device = torch.device(device)
    if dtype is None:
        dtype = next((t.dtype for t in layer_state.values() if t.is_floating_point()), torch.float32)

    with torch.device("meta"):
        layer = import_object(spec.layer_class)(cfg, layer_idx=layer_index)
    layer_state = {name: t for name, t in layer_state.items() if not spec.is_ignored_tensor(name)}
    _assign(layer, layer_state, device, dtype, what=f"layer {layer_index} of {spec.model_type}")

    final_norm = None
    if final_norm_state:
        with torch.device("meta"):
            final_norm = _final_norm(cfg, spec)
        _assign(final_norm, final_norm_state, device, dtype, what="final norm")

    rotary = None
    if spec.rotary_class is not None:
        rotary = import_object(spec.rotary_class)(config=cfg).to(device)
    return FrozenLayer(spec, cfg, layer_index, layer, rotary, final_norm)


def _layer_config(config: Mapping[str, Any] | Any, layer_index: int, attn_implementation: str | None
                  ) -> tuple[Any, ArchSpec, int]:
    """(config object with its attention implementation set, the architecture's row, the resolved layer index)."""
    cfg = make_config(config)
    spec = arch_for_config({"model_type": cfg.model_type})
    layer_index = resolve_layer_index(layer_index, int(getattr(cfg, spec.num_layers_attr)))
    attn = attn_implementation or spec.attn_implementation
    if attn not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(f"unsupported attention implementation {attn!r}", f"use one of {ATTN_IMPLEMENTATIONS}")
    cfg._attn_implementation = attn
    return cfg, spec, layer_index


def _final_norm(cfg: Any, spec: ArchSpec) -> nn.Module:
    return import_object(spec.final_norm_class)(cfg.hidden_size, eps=getattr(cfg, spec.norm_eps_attr))


def shaped_frozen_layer(
    config: Mapping[str, Any] | Any,
    layer_index: int = -1,
    *,
    device: str | torch.device = "meta",
    dtype: torch.dtype = torch.float32,
    final_norm: bool = False,
    attn_implementation: str | None = None,
) -> FrozenLayer:
    """Layer ``layer_index`` of the model ``config`` describes, with no checkpoint: on the meta device (shapes only,
    for counting parameters and FLOPs) or, on a real device, with the class's own random init (for timing)."""
    cfg, spec, layer_index = _layer_config(config, layer_index, attn_implementation)
    with torch.device(device):
        layer = import_object(spec.layer_class)(cfg, layer_idx=layer_index).to(dtype)
        norm = _final_norm(cfg, spec).to(dtype) if final_norm else None
        rotary = import_object(spec.rotary_class)(config=cfg) if spec.rotary_class is not None else None
    return FrozenLayer(spec, cfg, layer_index, layer, rotary, norm)


def _assign(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    device: torch.device,
    dtype: torch.dtype,
    what: str,
) -> None:
    """Load ``state`` strictly into a meta-device ``module`` by assignment (no extra copy)."""
    converted = {
        name: tensor.to(device=device, dtype=dtype) if tensor.is_floating_point() else tensor.to(device)
        for name, tensor in state.items()
    }
    expected = set(module.state_dict())
    missing, unexpected = sorted(expected - set(converted)), sorted(set(converted) - expected)
    if missing or unexpected:
        raise ArtifactError(
            f"the tensors of {what} do not match its transformers class: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}",
            "the artifact was made for another architecture or config; extract it again",
        )
    try:
        module.load_state_dict(converted, strict=True, assign=True)
    except RuntimeError as exc:  # shape mismatches
        raise ArtifactError(f"the tensors of {what} do not fit its transformers class: {exc}") from exc
    leftovers = [name for name, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if leftovers:
        raise ArtifactError(f"{what} has tensors that no checkpoint holds: {leftovers}")
    module.requires_grad_(False)


_DTYPE_NAMES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
                "fp16": torch.float16, "half": torch.float16, "float32": torch.float32, "fp32": torch.float32,
                "float": torch.float32}


def as_torch_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A torch dtype from a dtype or its name ("bfloat16", "bf16", "float16", "fp16", "float32", "fp32")."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).strip().lower().removeprefix("torch.")
    if name not in _DTYPE_NAMES:
        raise ConfigError(f"unknown dtype {dtype!r}", "use bfloat16, float16 or float32 (or a torch.dtype)")
    return _DTYPE_NAMES[name]


def load_layer(
    artifact: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    verify: bool = True,
    *,
    attn_implementation: str | None = None,
) -> FrozenLayer:
    """The frozen layer stored in a pifi artifact file (its data sha256 checked when ``verify``); ``dtype`` a torch
    dtype or its name ("bfloat16"), None keeping the artifact's."""
    from pifi_extract.artifact import load_artifact_tensors, read_artifact

    info = read_artifact(artifact)
    layer_state, norm_state = load_artifact_tensors(artifact, device="cpu", verify=verify)
    return build_frozen_layer(
        info.config,
        info.layer_index,
        layer_state,
        final_norm_state=norm_state or None,
        device=device,
        dtype=as_torch_dtype(dtype),
        attn_implementation=attn_implementation,
    )
