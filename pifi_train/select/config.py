"""Options of ``pifi select`` (torch-free: the CLI reads the defaults from here) and the layer-list syntax."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pifi_extract.errors import ConfigError, LayerIndexError

SCORES = ("ilm", "probe", "both")


@dataclass
class SelectConfig:
    """One ``pifi select`` invocation (defaults: the PIFI-ILM fork's, 555ad63)."""

    llm: str
    gguf_file: str | None = None
    revision: str | None = None
    tokenizer: str | None = None  # default: the LLM's own tokenizer files
    # data: a built-in task's validation split, or a local file (--validation-file, else --train-file)
    task: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    samples: int = 400
    # scoring
    score: str = "both"  # ilm (the fork's) | probe (held-out) | both (rank by probe)
    pooling: str = "mean"  # mean over real tokens | last real token
    max_length: int = 128
    layers: str | None = None  # "0:32", "0,8,16,-1"; None: every layer
    folds: int = 5
    seed: int = 2023
    batch_size: int = 16
    padding_side: str | None = None  # left | right; None: the tokenizer's
    device: str = "auto"
    # layers and outputs
    cache_layers: bool = False
    cache_dir: str | None = None
    extract_top: int = 0
    output: str = "selection.json"

    def validate(self) -> None:
        if self.score not in SCORES:
            raise ConfigError(f"unknown --score {self.score!r}", f"use one of {', '.join(SCORES)}")
        if (self.task is None) == (self.train_file is None and self.validation_file is None):
            raise ConfigError("pass either --task or --train-file/--validation-file", "see pifi select --help")
        if self.samples < 2 or self.folds < 2:
            raise ConfigError("--samples and --folds must be at least 2")
        if self.padding_side not in (None, "left", "right"):
            raise ConfigError(f"unknown --padding-side {self.padding_side!r}", "use left or right")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_layers(spec: str | None, num_layers: int) -> list[int]:
    """``None`` -> all; ``"a:b"`` (Python slice, either end optional, negatives allowed); ``"0,8,-1"``."""
    if spec is None or spec.strip() in ("", ":", "all"):
        return list(range(num_layers))
    try:
        if ":" in spec:
            start, _, stop = spec.partition(":")
            chosen = list(range(num_layers))[slice(int(start) if start.strip() else None,
                                                   int(stop) if stop.strip() else None)]
            if not chosen:
                raise LayerIndexError(f"--layers {spec} selects no layer of the model's {num_layers}",
                                      f"use indices in 0..{num_layers - 1}")
            return chosen
        values = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"cannot read --layers {spec!r}", "write a range 0:32 or a list 0,8,16,-1") from None
    bad = [v for v in values if not -num_layers <= v < num_layers]
    if bad or not values:
        raise LayerIndexError(f"--layers {spec}: layer {bad[0] if bad else '?'} is out of range (the model has "
                              f"{num_layers} layers)", f"use indices in {-num_layers}..{num_layers - 1}")
    return sorted({v % num_layers for v in values})
