"""A training run's options (:class:`TrainConfig`: the groups of :mod:`pifi_train.options`), precision, progress.

:class:`TrainConfig` is what ``pifi train`` fills from its options and what a run's ``config.json``
records under ``options`` (flat); a resumed run is rebuilt from it. Values that depend on the task
family (``max_length``, ``plug``, ``select_by``) stay ``None``/``auto`` here and are resolved by the family
(:mod:`pifi_train.families`, which this module never imports).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, Literal

from pifi_extract.errors import ConfigError

from .options import (AblationOptions, DataOptions, OptimOptions, PlugOptions, QaOptions,
                      RunOptions, Seq2SeqOptions, TrackingOptions, default_of, option_fields)

if TYPE_CHECKING:  # torch is imported where a tensor is made: the CLI reads these defaults without it
    import torch


DEFAULT_SLM = "google-bert/bert-base-uncased"


@dataclass
class TrainConfig(Seq2SeqOptions, QaOptions, TrackingOptions, AblationOptions, RunOptions, OptimOptions, PlugOptions,
                  DataOptions):
    """One ``pifi train`` invocation (defaults = the paper's recipe); fields in the order of their groups."""

    def __post_init__(self) -> None:
        # one artifact is always a plain string (config.json as before); several stay an ordered list
        if self.layer_artifact is not None and not isinstance(self.layer_artifact, str):
            references = [str(r) for r in self.layer_artifact]
            self.layer_artifact = references[0] if len(references) == 1 else (references or None)
        if isinstance(self.report_to, str):  # transformers' TrainingArguments accepts a string too
            self.report_to = [self.report_to]

    def validate(self) -> None:
        """Cheap checks of option values and combinations that hold in every family (files and models are
        checked when loaded; the family's own checks: :meth:`pifi_train.families.spec.Family.validate`)."""
        if (self.task is None) == (self.train_file is None):
            raise ConfigError("pass either --task or --train-file (not both, not neither)")
        for name in ("max_train_samples", "max_eval_samples", "max_length"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.method == "pifi" and not self.layer_artifact:
            raise ConfigError("--method pifi needs --layer-artifact", "run `pifi extract` first, or use --method base")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "seeds": self.seeds,
                    "eval_batch_size": self.eval_batch_size or 1}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if not (0 < self.lr < float("inf") and 0 <= self.weight_decay < float("inf") and 0 < self.grad_clip < float("inf")
                and 0 <= self.label_smoothing < 1):  # written so that NaN fails every test
            raise ConfigError("--lr and --grad-clip must be finite numbers > 0, --weight-decay >= 0, "
                              "--label-smoothing in [0, 1)")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(f"--validation-fraction must be in (0, 1), got {self.validation_fraction}")
        if self.num_workers < 0:
            raise ConfigError(f"--num-workers must be 0 or more, got {self.num_workers}", "0 loads data in the main process")
        self.validate_ablations()
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def validate_ablations(self) -> None:
        from .clean import resolve_cleaning

        resolve_cleaning(self.clean_text, self.task)
        if self.layer_init not in LAYER_INITS:
            raise ConfigError(f"--layer-init must be one of {', '.join(LAYER_INITS)}, got {self.layer_init!r}")
        if self.method != "pifi" and (self.layer_init != "artifact" or self.train_layer):
            raise ConfigError("--layer-init random and --train-layer need --method pifi")
        if self.train_fraction is not None and not 0.0 < self.train_fraction <= 1.0:
            raise ConfigError(f"--train-fraction must be in (0, 1], got {self.train_fraction}")
        if self.lora_r < 1 or self.lora_alpha < 1 or not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError("--lora-r and --lora-alpha must be at least 1, --lora-dropout in [0, 1)")

    def for_method(self, method: str, layer_artifact: str | list[str] | None = None,
                   **changes: Any) -> "TrainConfig":
        """A copy for another ``--method`` (and its artifact): options of other methods back at their defaults."""
        values = {**self.to_dict(), **changes, "method": method, "layer_artifact": layer_artifact}
        for f in option_fields():
            methods = f.metadata.get("methods")
            if methods is not None and method not in methods and f.name != "layer_artifact":
                values[f.name] = default_of(f)
        return TrainConfig(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Rebuild from a mapping of option names (unknown keys ignored: config.json of a newer pifi)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LAYER_INITS = ("artifact", "random")


@dataclass(frozen=True)
class Precision:
    """How a run computes: autocast dtype (None = fp32), the frozen layer's dtype, grad scaling."""

    autocast: torch.dtype | None
    layer_dtype: torch.dtype
    grad_scaler: bool

    def describe(self) -> dict[str, Any]:
        name = lambda d: str(d).replace("torch.", "") if d is not None else None  # noqa: E731
        return {"autocast": name(self.autocast), "layer_dtype": name(self.layer_dtype),
                "grad_scaler": self.grad_scaler}


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """CPU: fp32. CUDA: autocast bf16 (fp16 + grad scaler where bf16 is unsupported), layer in that dtype."""
    import torch

    if device.type != "cuda":
        if precision not in ("auto", "fp32"):
            raise ConfigError(f"--precision {precision} needs a CUDA device; on CPU pifi trains in fp32")
        return Precision(None, torch.float32, False)
    if precision == "fp32":
        return Precision(None, torch.float32, False)
    bf16_ok = torch.cuda.is_bf16_supported()
    if precision == "bf16" and not bf16_ok:
        raise ConfigError("--precision bf16: this GPU does not support bfloat16", "use --precision fp16")
    if precision == "bf16" or (precision == "auto" and bf16_ok):
        return Precision(torch.bfloat16, torch.bfloat16, False)
    return Precision(torch.float16, torch.float16, True)


@dataclass(frozen=True)
class ProgressEvent:
    """What the trainer reports (rank 0 only) to a front end such as the CLI's progress bar.

    ``kind``: ``run_start`` (seed, epochs), ``epoch_start`` (steps), ``step`` (loss, throughput),
    ``eval_step`` (batches of an evaluation done: ``step`` of ``steps``, ``split``), ``epoch_end`` (validation
    metrics), ``run_end`` (final metrics). ``run_start`` names the run directory (its config.json is
    written), ``step`` the learning rate (trackers: pifi_train.tracking).
    """

    kind: Literal["run_start", "epoch_start", "step", "eval_step", "epoch_end", "run_end"]
    seed: int
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    loss: float | None = None
    examples_per_second: float | None = None
    metrics: dict[str, Any] | None = None
    run_dir: str | None = None
    lr: float | None = None
    split: str | None = None


ProgressCallback = Callable[[ProgressEvent], None]
