"""What ``pifi cost`` counts (:mod:`pifi_train.cost`): the options of a count and its target, shared by the torch-free
planning and the torch side (:mod:`pifi_train.cost_build`). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pifi_extract.errors import ConfigError

from .families import Family
from .options import ModelOptions

DTYPES = ("float32", "bfloat16", "float16")  # torch dtypes by name


@dataclass
class CostOptions:
    """How to count and time (defaults: the paper's Table 16, a batch of 32 inputs of 100 tokens, fp32)."""

    batch_size: int = 32
    seq_len: int | None = None  # tokens per input (default: the run's --max-length, else the family's: 100, QA 384)
    target_len: int | None = None  # seq2seq decoder tokens (default: the run's --max-target-length, else 100)
    dtype: str = "float32"
    device: str = "cpu"
    repeats: int = 10  # timed forwards (after 2 warm-up ones); the median is reported
    random_weights: bool = False  # time a configuration without weights on random values of the same shapes

    def check(self) -> None:
        for name in ("batch_size", "seq_len", "target_len", "repeats"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


@dataclass
class LayerSource:
    """One layer to plug: its LLM's config, its index, and its artifact when the weights are at hand."""

    config: dict[str, Any]
    index: int
    name: str
    artifact: str | None = None


@dataclass
class CostTarget:
    """What to count: a family's model around an SLM, with (PiFi) or without (base) the layers."""

    family: Family
    slm: str
    slm_config: Any
    layers: list[LayerSource]
    options: ModelOptions  # how the PiFi arm is wired
    spec: dict[str, Any]  # the family's model spec (labels, v2, source prefix)
    max_length: int
    target_len: int
    slm_weights: str | None = None  # a local folder with the SLM's safetensors weights
    run: Any = None  # the OpenedRun of a run target
    lora: tuple[int, int, float, str | None] | None = None  # a LoRA run's (r, alpha, dropout, targets)

    @property
    def arms(self) -> list[str]:
        method = self.run.options.method if self.run is not None else ("pifi" if self.layers else "base")
        return ["base"] if method == "base" else ["base", method]
