"""Options of ``pifi select`` (torch-free: the CLI reads the defaults from here) and the layer-list syntax."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from pifi_extract.errors import ConfigError, LayerIndexError

from ..config import DEFAULT_SLM

SCORES = ("ilm", "probe", "both", "fit")
PLUGS = ("cls", "sequence")
PAIR_MODES = ("top", "adjacent")


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
    score: str = "both"  # ilm (the fork's) | probe (held-out) | both (rank by probe) | fit (the fast search)
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
    prefetch: bool = True  # read layer i+1 while layer i computes (at most two layers in memory)
    # the fast search (score "fit": L_in, L_out and the head trained on cached SLM states through each layer)
    slm: str = DEFAULT_SLM
    slm_run: str | None = None  # a `pifi train` run (usually --method base) whose fine-tuned SLM encodes the data
    plug: str = "cls"  # cls (one vector per example crosses the layer) | sequence (every token)
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    fit_epochs: int = 5
    fit_lr: float = 1e-3
    fit_seeds: int = 1
    pairs: str | None = None  # "top:K" (pairs of the K best single layers) | "adjacent:K" (their neighbours)

    def validate(self) -> None:
        if self.score not in SCORES:
            raise ConfigError(f"unknown --score {self.score!r}", f"use one of {', '.join(SCORES)}")
        if (self.task is None) == (self.train_file is None and self.validation_file is None):
            raise ConfigError("pass either --task or --train-file/--validation-file", "see pifi select --help")
        if self.samples < 2 or self.folds < 2:
            raise ConfigError("--samples and --folds must be at least 2")
        if self.padding_side not in (None, "left", "right"):
            raise ConfigError(f"unknown --padding-side {self.padding_side!r}", "use left or right")
        if self.max_length < 1 or self.batch_size < 1:
            raise ConfigError(f"--max-length and --batch-size must be at least 1, got {self.max_length} and "
                              f"{self.batch_size}")
        if self.score == "fit":
            self.validate_fit()
        elif self.pairs is not None:
            raise ConfigError("--pairs needs --score fit (pairs are trained, not probed)", "add --score fit")
        ignored = PROBE_ONLY if self.score == "fit" else FIT_ONLY
        given = [name for name in ignored if getattr(self, name) != _DEFAULTS[name]]
        if given:  # an option the chosen score would ignore: refused rather than silently dropped
            flag = "--" + given[0].replace("_", "-")
            raise ConfigError(f"{flag} does not apply to --score {self.score}",
                              f"{flag} is for --score {'fit' if self.score != 'fit' else 'ilm/probe/both'}; drop it")

    def validate_fit(self) -> None:
        if self.plug not in PLUGS:
            raise ConfigError(f"unknown --plug {self.plug!r}", f"use one of {', '.join(PLUGS)}")
        if self.task is None and self.train_file is None:
            raise ConfigError("--score fit trains on training data: pass --train-file (or --task)",
                              "--validation-file alone is enough for ilm and probe only")
        if self.fit_epochs < 1 or self.fit_seeds < 1 or not 0 < self.fit_lr < float("inf"):
            raise ConfigError("--fit-epochs and --fit-seeds must be at least 1, --fit-lr a finite number > 0")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.pairs is not None:
            parse_pairs(self.pairs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# options that only one kind of score reads (the rest apply to both)
PROBE_ONLY = ("samples", "pooling", "folds", "padding_side", "tokenizer")
FIT_ONLY = ("slm", "slm_run", "plug", "max_train_samples", "max_eval_samples", "fit_epochs", "fit_lr", "fit_seeds")
_DEFAULTS = {f.name: f.default for f in fields(SelectConfig)}


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


def parse_pairs(spec: str) -> tuple[str, int]:
    """``"top:K"`` or ``"adjacent:K"`` -> (mode, K), K >= 1 (top needs K >= 2: one pair at least)."""
    mode, _, k = spec.partition(":")
    try:
        count = int(k)
    except ValueError:
        count = 0
    if mode not in PAIR_MODES or count < (2 if mode == "top" else 1):
        raise ConfigError(f"cannot read --pairs {spec!r}", "write top:K (pairs among the K best layers, K >= 2) or "
                                                            "adjacent:K (each of the K best with its neighbours)")
    return mode, count
