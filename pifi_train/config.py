"""Every option of a training run, with the paper's defaults, plus precision and progress types.

:class:`TrainConfig` is what ``pifi train`` fills from its options and what a run's
``config.json`` records under ``options``; a resumed run is rebuilt from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, Literal

from pifi_extract.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where a tensor is made: the CLI reads these defaults without it
    import torch

    from .model import ModelOptions

DEFAULT_SLM = "google-bert/bert-base-uncased"


@dataclass
class TrainConfig:
    """One ``pifi train`` invocation (defaults = the paper's recipe)."""

    # data: a built-in task, or local files
    task: str | None = None
    task_type: str = "auto"  # auto (the task's family) | a row of pifi_train.families.FAMILIES
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    validation_fraction: float = 0.2
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    # model
    slm: str = DEFAULT_SLM
    slm_pretrained: bool = True
    layer_artifact: str | list[str] | None = None  # several: plugged in this order
    method: str = "pifi"
    plug: str = "cls"
    attention: str = "bidirectional"
    post_norm: bool = False
    pooling: str = "auto"
    dropout: float = 0.2
    # optimisation (Adam, no scheduler)
    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int | None = None
    lr: float = 5e-5
    weight_decay: float = 0.0
    max_length: int = 100
    label_smoothing: float = 0.05
    grad_clip: float = 5.0
    seed: int = 2023
    seeds: int = 1
    # execution and outputs
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    output_dir: str | None = None
    overwrite: bool = False
    # ablations and paper-faithful data
    layer_init: str = "artifact"  # artifact | random (Table 5, PiFi-Random: the architecture's own init, seeded)
    train_layer: bool = False  # Table 11: the layer trains (fp32) and the checkpoint holds it
    lora_r: int = 8  # --method lora (Table 18): peft LoRA on the SLM, the same head
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: str | None = None  # comma-separated module names; None: peft's default for the SLM
    train_fraction: float | None = None  # Table 19: a seeded, stratified share of the training set
    extra_test: list[str] | None = None  # Table 3: more test sets (built-in tasks or local files)
    clean_text: str = "auto"  # auto (html for the paper's classification tasks, none otherwise) | html | none
    split_seed: int = 2023  # seeds the train/validation split; --seed varies training only (as the paper)
    # tracking
    report_to: list[str] = field(default_factory=lambda: ["none"])  # none | all | tensorboard, wandb, mlflow
    # extractive QA (pifi_train.qa; max_length left at 100 means 384 under the standard protocol)
    protocol: str = "standard"  # standard (stride windows, the dev set as test) | paper (the authors' split)
    doc_stride: int = 128  # tokens of overlap between the windows of a long context
    max_answer_length: int = 30  # longest answer span in tokens
    n_best: int = 20  # start and end candidates per window
    null_score_threshold: float = 0.0  # v2: answer "" when the no-answer score beats the best span by more
    # sequence-to-sequence (task family seq2seq: pifi_train.seq2seq)
    source_column: str = "source"
    target_column: str = "target"
    source_prefix: str | None = None  # None: the built-in task's T5 prefix for a T5 SLM, else none
    max_target_length: int = 100
    num_beams: int = 5
    max_new_tokens: int = 100
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    select_by: str = "loss"  # loss (validation loss, the authors) | bleu | rougeL

    def __post_init__(self) -> None:
        # one artifact is always a plain string (config.json as before); several stay an ordered list
        if self.layer_artifact is not None and not isinstance(self.layer_artifact, str):
            references = [str(r) for r in self.layer_artifact]
            self.layer_artifact = references[0] if len(references) == 1 else (references or None)
        if isinstance(self.report_to, str):  # transformers' TrainingArguments accepts a string too
            self.report_to = [self.report_to]

    def family(self) -> str:
        """classification, qa, seq2seq, ... (pifi_train.families)."""
        from .families import family_of

        return family_of(self.task, self.task_type)

    def model_options(self) -> ModelOptions:
        from .model import ModelOptions

        return ModelOptions(self.method, self.plug, self.attention, self.post_norm, self.pooling, self.dropout,
                            self.train_layer)

    def validate(self) -> None:
        """Cheap checks of option values and combinations (files and models are checked when loaded)."""
        self.model_options()
        if (self.task is None) == (self.train_file is None):
            raise ConfigError("pass either --task or --train-file (not both, not neither)")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.method == "pifi" and not self.layer_artifact:
            raise ConfigError("--method pifi needs --layer-artifact", "run `pifi extract` first, or use --method base")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "max_length": self.max_length,
                    "seeds": self.seeds, "eval_batch_size": self.eval_batch_size or 1}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if not (0 < self.lr < float("inf") and 0 <= self.weight_decay < float("inf") and 0 < self.grad_clip < float("inf")
                and 0 <= self.label_smoothing < 1):  # written so that NaN fails every test
            raise ConfigError("--lr and --grad-clip must be finite numbers > 0, --weight-decay >= 0, "
                              "--label-smoothing in [0, 1)")
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
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
    ``epoch_end`` (validation metrics), ``run_end`` (final metrics). ``run_start`` names the run directory
    (its config.json is written), ``step`` the learning rate (trackers: pifi_train.tracking).
    """

    kind: Literal["run_start", "epoch_start", "step", "epoch_end", "run_end"]
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


ProgressCallback = Callable[[ProgressEvent], None]
