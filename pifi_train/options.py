"""Every option of a training run, in groups, each default and help text written once, on its field.

A field's metadata says what the CLI and the rest of pifi need to know about it:

- ``help``: the ``--help`` text (the CLI builds ``pifi train``/``sweep``/``demo`` options from these fields);
- ``families``: the task families that take it (:mod:`pifi_train.families`); any other family refuses a
  non-default value in one line naming the families that take it;
- ``result``: whether it changes a run's result: ``pifi report`` groups runs by every such option, so
  runs that differ in one never pool into one row (seed, paths and output options do not);
- ``methods``: the ``--method`` values it applies to (other methods ignore it, so ``report`` does too);
- ``flag``: the CLI's spelling when it is not ``--<name>`` (e.g. ``--post-norm/--no-post-norm``).

Torch-free: the CLI reads these without importing torch.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any

from pifi_extract.errors import ConfigError

CLASSIFICATION, QA, SEQ2SEQ = "classification", "qa", "seq2seq"
# --method: lora is the SLM with peft LoRA adapters, no layer (Table 18); llm is a frozen LLM layer on the LLM's own
# embedding rows with a head, no SLM (Table 15)
METHODS = ("pifi", "base", "lora", "llm")
LAYER_METHODS = ("pifi", "llm")  # the methods that plug --layer-artifact


def option(default: Any, help: str, *, families: tuple[str, ...] | None = None, result: bool = True,
           methods: tuple[str, ...] | None = None, flag: str | None = None, hidden: bool = False) -> Any:
    """A dataclass field carrying its CLI help and its place in pifi (see the module docstring)."""
    meta = {"help": help, "families": families, "result": result, "methods": methods, "flag": flag,
            "hidden": hidden}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataOptions:
    """What to train and evaluate on (shared by train, sweep, demo and select)."""

    task: str | None = option(None, "Built-in task: sst2, imdb, tweet_sentiment_binary, tweet_offensive, cola, mnli, "
                              "snli, cr, nsmc, filmstarts, sst5, subj, trec, agnews, dbpedia, mr; QA: squad, squad_v2; "
                              "seq2seq: multi30k, cnn_dailymail (needs pifi[datasets]).")
    task_type: str = option("auto", "auto (the task's family; local files: classification), classification, qa or "
                            "seq2seq.")
    train_file: str | None = option(None, "Local training data: .csv, .tsv or .jsonl (QA: SQuAD .json/.jsonl).")
    validation_file: str | None = option(None, "Local validation data (default: a seeded split of --train-file).")
    test_file: str | None = option(None, "Local test data (evaluated with the best epoch).")
    text_column: str = option("text", "Column with the text.", families=(CLASSIFICATION,))
    text_pair_column: str | None = option(None, "Column with the second text of a pair (e.g. hypothesis).",
                                          families=(CLASSIFICATION,))
    label_column: str = option("label", "Column with the label (integers or names).", families=(CLASSIFICATION,))
    validation_fraction: float = option(0.2, "Share of train held out when there is no validation file.")
    split_seed: int = option(2023, "Seed of the train/validation split and of --train-fraction: the same for every "
                             "--seed, as the paper.")
    max_train_samples: int | None = option(None, "Use only the first N training examples.")
    max_eval_samples: int | None = option(None, "Use only the first N validation/test examples.")
    max_length: int | None = option(None, "Maximum tokens per example (default: the family's: classification and "
                                    "seq2seq 100 as the paper, QA 384; QA --protocol paper 100).")
    train_fraction: float | None = option(None, "Train on a seeded share of the training set (stratified by label "
                                          "for classification; Table 19).")
    extra_test: list[str] | None = option(None, "Also test the best epoch on this built-in task or local file "
                                          "(repeatable; classification labels matched by name; Table 3).")
    clean_text: str = option("auto", "auto (html for the paper's classification tasks, none otherwise), html (the "
                             "authors' BeautifulSoup cleaning; pifi[paper]) or none.")


@dataclass
class PlugOptions:
    """The small LM and how the LLM layer is plugged in."""

    slm: str = option("google-bert/bert-base-uncased", "Small LM: Hub id or local folder (BERT, RoBERTa, DeBERTa-V3, "
                      "ELECTRA, MiniLM, SmolLM2...; seq2seq: T5, BART...; not --method llm).")
    slm_pretrained: bool = option(True, "Pretrained SLM weights (--slm-random-init: random, for benchmarks).",
                                  flag="--slm-pretrained/--slm-random-init", hidden=True)
    layer_artifact: str | list[str] | None = option(
        None, "The LLM layer: artifact file from `pifi extract`, or a cache key (org/name:-1). Repeat to plug several "
        "layers in that order (same hidden size).", methods=LAYER_METHODS, result=False)  # sha256: the identity
    method: str = option("pifi", "pifi (SLM + frozen LLM layer), base (the SLM alone), lora (the SLM with LoRA "
                         "adapters; pifi[lora]) or llm (no SLM: the LLM's own embedding rows, read for the tokens "
                         "the data uses, -> the frozen layer(s), causal -> head; classification; Table 15).")
    plug: str | None = option(None, "cls: only the pooled vector goes through the layer (the paper's classifier); "
                              "sequence: every token (QA and seq2seq always).", methods=("pifi",))
    attention: str = option("bidirectional", "Attention inside the layer when every token goes through it: "
                            "bidirectional or causal.", methods=("pifi",))
    post_norm: bool = option(False, "Apply the LLM's final norm after the layer (off in the paper).",
                             methods=LAYER_METHODS, flag="--post-norm/--no-post-norm")
    pooling: str = option("auto", "h_enc: auto (first token for encoders, last non-pad token for decoders and --method "
                          "llm), first, last, mean (over real tokens) or mean_with_padding (over all --max-length "
                          "positions: inputs padded to --max-length, as the authors'; Table 10).",
                          families=(CLASSIFICATION,))
    dropout: float = option(0.2, "Dropout of the classification head.", families=(CLASSIFICATION,))


@dataclass
class OptimOptions:
    """Optimisation (Adam, no scheduler, no early stopping: the paper's recipe)."""

    epochs: int = option(3, "Epochs (with --resume: extend the run to this many).")
    batch_size: int = option(32, "Batch size per process (last partial batch dropped).")
    eval_batch_size: int | None = option(None, "Evaluation batch size (default: --batch-size).", result=False)
    lr: float = option(5e-5, "Learning rate (the peak one with --scheduler linear/cosine).")
    optimizer: str = option("adam", "adam (the paper's), adamw or sgd (plain, no momentum: the authors' choices).")
    weight_decay: float = option(0.0, "Weight decay: adam and sgd add it to the gradient (L2), adamw decouples it.")
    scheduler: str = option("constant", "Learning rate per step: constant (the paper's), linear (decay to 0) or "
                            "cosine (to 0), after --warmup-ratio of the steps (transformers' schedules).")
    warmup_ratio: float = option(0.0, "Share of all training steps over which the learning rate rises linearly "
                                 "from 0 (any --scheduler).")
    patience: int | None = option(None, "Early stopping: stop when the --select-by metric has not improved for this "
                                  "many epochs (default: train every epoch, as the paper).")
    label_smoothing: float = option(0.05, "Cross-entropy label smoothing.")
    grad_clip: float = option(5.0, "Gradient-norm clipping.")
    select_by: str = option("auto", "The validation metric that picks the best epoch: auto (the family's: "
                            "classification accuracy, QA f1, seq2seq loss), or one the family names (e.g. macro_f1, "
                            "exact_match, bleu, rougeL, loss).")
    seed: int = option(2023, "Seed of the first run.", result=False)
    seeds: int = option(1, "Repeat with this many seeds (seed, seed+1, ...): output-dir/seed-<s>/.", result=False)


@dataclass
class RunOptions:
    """Where and how a run executes (none of these changes its result, but precision)."""

    device: str = option("auto", "auto, cpu, cuda or cuda:N (torchrun: one GPU per process).", result=False)
    precision: str = option("auto", "auto (CUDA: bf16, fp16 where unsupported; CPU: fp32), fp32, bf16, fp16.")
    num_workers: int = option(0, "DataLoader worker processes.", result=False)
    output_dir: str | None = option(None, "Run directory (default runs/<task>-<method>-<time>).", result=False)
    overwrite: bool = option(False, "Replace the run files of an existing run directory (other files stay).",
                             result=False)


@dataclass
class AblationOptions:
    """The paper's ablations that change the model."""

    layer_init: str = option("artifact", "artifact, or random: the artifact's shape and config with its "
                             "architecture's own init, seeded (Table 5, PiFi-Random).", methods=("pifi",))
    train_layer: bool = option(False, "Train the LLM layer too, in fp32 (Table 11); the checkpoint then holds it.",
                               methods=("pifi",))
    lora_r: int = option(8, "--method lora: LoRA rank (Table 18).", methods=("lora",))
    lora_alpha: int = option(16, "--method lora: LoRA alpha.", methods=("lora",))
    lora_dropout: float = option(0.1, "--method lora: LoRA dropout.", methods=("lora",))
    lora_targets: str | None = option(None, "--method lora: comma-separated module names (default: peft's for the "
                                      "SLM).", methods=("lora",))


@dataclass
class TrackingOptions:
    report_to: list[str] = option(["none"], "Experiment trackers (as transformers' report_to): none, all, "
                                  "tensorboard, wandb, mlflow; repeatable.", result=False)


@dataclass
class QaOptions:
    """Extractive QA (--task squad / squad_v2, or --task-type qa with SQuAD JSON/JSONL files)."""

    protocol: str = option("standard", "QA: standard (384 tokens, stride windows, the official dev set as test) or "
                           "paper (the authors' split, 100 tokens, no stride, also their token-span EM/F1).",
                           families=(QA,))
    doc_stride: int = option(128, "QA: tokens of overlap between the windows of a long context.", families=(QA,))
    max_answer_length: int = option(30, "QA: longest answer in tokens.", families=(QA,))
    n_best: int = option(20, "QA: start and end candidates per window.", families=(QA,))
    null_score_threshold: float = option(0.0, "QA v2: answer nothing when the no-answer score beats the best span "
                                         "by more than this.", families=(QA,))


@dataclass
class Seq2SeqOptions:
    """Sequence-to-sequence (--task multi30k / cnn_dailymail, or --task-type seq2seq with local files)."""

    source_column: str = option("source", "Seq2seq: column with the source text.", families=(SEQ2SEQ,))
    target_column: str = option("target", "Seq2seq: column with the target text.", families=(SEQ2SEQ,))
    source_prefix: str | None = option(None, "Seq2seq: text put before every source (default: the built-in task's "
                                       "T5 prefix for T5, else none).", families=(SEQ2SEQ,))
    max_target_length: int = option(100, "Seq2seq: maximum target tokens in training.", families=(SEQ2SEQ,))
    num_beams: int = option(5, "Seq2seq decoding (both arms, model.generate): beams.", families=(SEQ2SEQ,))
    max_new_tokens: int = option(100, "Seq2seq decoding: most generated tokens.", families=(SEQ2SEQ,))
    length_penalty: float = option(1.0, "Seq2seq decoding: beam length penalty.", families=(SEQ2SEQ,))
    no_repeat_ngram_size: int = option(0, "Seq2seq decoding: forbid repeating n-grams of this size (0: off).",
                                       families=(SEQ2SEQ,))
    # the paper's Table 2 metrics beside BLEU / ROUGE; each is off unless asked for
    meteor: bool = option(False, "Seq2seq: also score METEOR (nltk's, mean over examples; needs nltk's WordNet "
                          "data).", families=(SEQ2SEQ,), result=False, flag="--meteor/--no-meteor")
    bertscore_model: str | None = option(None, "Seq2seq: also score BERTScore F1 with this encoder, a Hub id or "
                                         "folder (the paper: google-bert/bert-base-multilingual-cased).",
                                         families=(SEQ2SEQ,), result=False)
    bertscore_layer: int | None = option(None, "Seq2seq: the BERTScore layer (default: bert-score's for the model, "
                                         "e.g. 9 for bert-base-multilingual-cased).", families=(SEQ2SEQ,), result=False)
    bartscore_model: str | None = option(None, "Seq2seq: also score BARTScore with this BART, a Hub id or folder "
                                         "(the paper: facebook/bart-large-cnn).", families=(SEQ2SEQ,), result=False)
    bartscore_direction: str = option("ref-hyp", "Seq2seq: BARTScore direction: ref-hyp (precision, the paper's), "
                                      "hyp-ref (recall), f (their mean) or src-hyp (faithfulness).",
                                      families=(SEQ2SEQ,), result=False)


GROUPS: tuple[type, ...] = (DataOptions, PlugOptions, OptimOptions, RunOptions, AblationOptions, TrackingOptions,
                            QaOptions, Seq2SeqOptions)


def default_of(f: Field) -> Any:
    """A field's default value (a fresh copy for list defaults)."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    raise KeyError(f"{f.name} has no default")


def option_fields(*groups: type) -> list[Field]:
    """The option fields of ``groups`` (default: every group), in order."""
    return [f for group in (groups or GROUPS) for f in fields(group)]


def meta(name: str) -> dict[str, Any]:
    """The metadata of option ``name``."""
    for f in option_fields():
        if f.name == name:
            return dict(f.metadata)
    raise KeyError(name)


def result_options() -> list[str]:
    """Options that change a run's result (``pifi report`` groups by them; the seed and paths do not)."""
    return [f.name for f in option_fields() if f.metadata.get("result", True)]


PLUGS = ("cls", "sequence")
ATTENTIONS = ("bidirectional", "causal")
POOLINGS = ("auto", "first", "last", "mean", "mean_with_padding")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("constant", "linear", "cosine")


@dataclass(frozen=True)
class ModelOptions:
    """How the classifier is wired (resolved from a run's options: ``TrainConfig.model_options``)."""

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
