"""Pooled hidden states after every layer of an LLM, computed one layer at a time.

Never the whole model: the samples are tokenized with the LLM's tokenizer, only the embedding rows of
the token ids that occur are range-read (:mod:`.embedding_rows`), then for layer 0..L-1 the layer is
read (from the pifi cache when it holds it, else by the same plan and range reads as ``pifi extract``,
into a temporary artifact or into the cache), rebuilt as a :class:`~pifi_train.frozen_layer.FrozenLayer`
(the model's causal masks and rotary embeddings), run on the (N, T, H) hidden states, pooled, and freed;
layer i+1 is read while layer i computes (:mod:`.layer_stream`). Memory: two layers + the hidden states +
the pooled (N, H) matrices, whatever the number of layers.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from pifi_extract.architectures import arch_for_config
from pifi_extract.errors import ConfigError
from pifi_extract.extract import plan_layers
from pifi_extract.sources import is_gguf
from pifi_extract.plan import num_layers_of

from .embedding_rows import read_embedding_rows
from .layer_stream import LayerStream, StreamStats

POOLINGS = ("mean", "last")
# progress(done_layers, total_layers, text)
StepCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class LayerStates:
    """The pooled hidden states (N, H) after one layer (``post_norm``: and the model's final norm)."""

    layer: int
    post_norm: bool
    X: np.ndarray  # (N, H) float32

    @property
    def name(self) -> str:
        return f"{self.layer}+norm" if self.post_norm else str(self.layer)


@dataclass
class StreamResult:
    """What one pass over the layers produced and read."""

    config: dict[str, Any]
    num_layers: int
    states: list[LayerStates]
    embedding_rows: int  # distinct token ids read
    bytes_read: int = 0
    cached_layers: list[int] = field(default_factory=list)  # layers taken from the pifi cache
    stats: StreamStats | None = None  # how the layer pass spent its time


def source_config(source: Any) -> dict[str, Any]:
    """The model's config.json (a GGUF file: as transformers reads it from the metadata)."""
    if is_gguf(source):
        return source.config()
    from pifi_extract.sources import read_json

    return read_json(source, "config.json")


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:  # (B, T, H), (B, T) -> (B, H)
    """Mean over real tokens, or the last real token (either padding side)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    if pooling == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-6)
    last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(1)  # (B,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def stream_pooled_states(
    source: Any,
    texts: Sequence[str],
    tokenizer: Any,
    *,
    layers: Sequence[int] | None = None,
    max_length: int = 128,
    pooling: str = "mean",
    batch_size: int = 16,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    cache: Any = None,
    cache_layers: bool = False,
    prefetch: bool = True,
    progress: StepCallback | None = None,
) -> StreamResult:
    """Pooled states after each of ``layers`` (resolved indices; None: all); the last also after the final norm.

    ``cache``: a :class:`layer_cache.get_or_extract.OpenSourceCache` of ``source``, consulted for every layer
    (``cache_layers``: layers it lacks are extracted into it, else into a temporary file). ``prefetch``: read
    layer i+1 while layer i computes (:class:`~.layer_stream.LayerStream`, at most two layers in memory).
    """
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling!r}", f"use one of {', '.join(POOLINGS)}")
    config = source_config(source)
    arch = arch_for_config(config)
    num_layers = num_layers_of(config, arch)
    wanted = sorted(set(range(num_layers) if layers is None else layers))
    dev = pick_device(device)
    dtype = dtype or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    counted = [0]

    def tick(n: int, *_: Any) -> None:
        counted[0] += n

    batches = [tokenizer(list(texts[i : i + batch_size]), padding=True, truncation=True, max_length=max_length,
                         return_tensors="pt") for i in range(0, len(texts), batch_size)]
    ids = [b["input_ids"] for b in batches]
    masks = [b["attention_mask"].to(dev) for b in batches]
    used = torch.unique(torch.cat([x.flatten() for x in ids]))  # sorted distinct ids
    table = read_embedding_rows(source, arch, config, used.tolist(), progress=tick).to(dev, dtype)  # (U, H)
    hidden = [table[torch.searchsorted(used, x).to(dev)] for x in ids]  # each (B, T, H)
    del table

    states: list[LayerStates] = []
    last = wanted[-1]
    plans = plan_layers(source, list(range(last + 1)))
    with tempfile.TemporaryDirectory(prefix="pifi-select-") as tmp:
        stream = LayerStream(source, plans, tmp, device=dev, dtype=dtype, cache=cache, cache_layers=cache_layers,
                             prefetch=prefetch)
        for i, layer in stream:
            if progress is not None:
                progress(i, last + 1, f"layer {i}")
            with torch.no_grad():
                for b in range(len(hidden)):
                    hidden[b] = layer(hidden[b], masks[b])  # (B, T, H)
                if i in wanted:
                    states.append(LayerStates(i, False, _pooled(hidden, masks, pooling)))
                if i == num_layers - 1 and i in wanted and layer.final_norm is not None:
                    normed = [layer.norm(h) for h in hidden]
                    states.append(LayerStates(i, True, _pooled(normed, masks, pooling)))
                    del normed
            del layer
        if progress is not None:
            progress(last + 1, last + 1, "done")
    stats = stream.stats
    return StreamResult(config, num_layers, states, int(used.numel()), counted[0] + stats.bytes_read,
                        stats.cached_layers, stats)


def _pooled(hidden: list[torch.Tensor], masks: list[torch.Tensor], pooling: str) -> np.ndarray:
    return torch.cat([pool(h, m, pooling).float().cpu() for h, m in zip(hidden, masks)]).numpy()
