"""Sequence-to-sequence data: (source, target) pairs from local files or the built-in tasks, and batches.

Built-in tasks (``pifi[datasets]``): ``multi30k`` (bentrevett/multi30k, English -> German) and
``cnn_dailymail`` (abisee/cnn_dailymail 3.0.0, article -> highlights). A T5 SLM gets the task's
prefix ("translate English to German: ", "summarize: "); other SLMs none, unless --source-prefix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from pifi_extract.errors import ConfigError, OfflineError

from ..data import read_table

IGNORE_INDEX = -100  # label positions that never enter the loss (padding)


@dataclass
class Pairs:
    """Source texts and their reference targets."""

    sources: list[str]
    targets: list[str]

    def __len__(self) -> int:
        return len(self.sources)

    def subset(self, indices: Sequence[int]) -> "Pairs":
        return Pairs([self.sources[i] for i in indices], [self.targets[i] for i in indices])


@dataclass
class Seq2SeqData:
    name: str
    train: Pairs
    validation: Pairs
    test: Pairs | None
    t5_prefix: str = ""  # the prefix a T5 SLM gets for this task
    source: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Seq2SeqTask:
    path: str
    config_name: str | None
    source_column: str
    target_column: str
    t5_prefix: str


TASKS = {
    "multi30k": Seq2SeqTask("bentrevett/multi30k", None, "en", "de", "translate English to German: "),
    "cnn_dailymail": Seq2SeqTask("abisee/cnn_dailymail", "3.0.0", "article", "highlights", "summarize: "),
}


def _pairs(rows: list[dict[str, Any]], source: str, target: str, where: str) -> Pairs:
    if not rows:
        raise ConfigError(f"{where} has no rows")
    for column in (source, target):
        if column not in rows[0]:
            raise ConfigError(f"{where} has no column {column!r}", f"its columns: {', '.join(map(str, rows[0]))}; "
                              "pass --source-column / --target-column")
    return Pairs([str(r[source]) for r in rows], [str(r[target]) for r in rows])


def load_local_pairs(train: Path, validation: Path | None, test: Path | None, source: str, target: str,
                     fraction: float, seed: int) -> Seq2SeqData:
    """CSV/TSV/JSONL files; without a validation file a seeded ``fraction`` of train is held out."""
    pairs = _pairs(read_table(train), source, target, str(train))
    if validation is not None:
        held = _pairs(read_table(validation), source, target, str(validation))
    else:
        order = list(range(len(pairs)))
        random.Random(seed).shuffle(order)
        cut = int(len(order) * fraction)
        pairs, held = pairs.subset(order[cut:]), pairs.subset(order[:cut])
    tested = _pairs(read_table(test), source, target, str(test)) if test is not None else None
    return Seq2SeqData(Path(train).stem, pairs, held, tested,
                       source={"train_file": str(train), "validation_file": str(validation) if validation else None,
                               "test_file": str(test) if test else None})


def load_builtin_pairs(name: str, cache_dir: str | None = None) -> Seq2SeqData:
    """A built-in seq2seq task with its own train/validation/test splits."""
    spec = TASKS[name]
    try:
        import datasets  # optional extra: pifi[datasets]
    except ImportError as err:
        raise ConfigError(f"built-in task {name!r} needs the optional 'datasets' library",
                          "pip install 'pifi[datasets]', or pass local files with --train-file") from err
    from huggingface_hub import constants

    try:
        loaded: Any = datasets.load_dataset(spec.path, spec.config_name, cache_dir=cache_dir)
    except Exception as err:  # datasets raises many types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        if constants.HF_HUB_OFFLINE or isinstance(err, ConnectionError):
            raise OfflineError(f"dataset {spec.path} for task {name!r} is not available offline: {first}",
                               "connect to the Hub once to cache it, or pass local files with --train-file") from err
        raise ConfigError(f"could not load dataset {spec.path} for task {name!r}: {first}") from err

    def split(key: str) -> Pairs:
        part = loaded[key]
        return Pairs([str(s) for s in part[spec.source_column]], [str(t) for t in part[spec.target_column]])

    return Seq2SeqData(name, split("train"), split("validation"), split("test") if "test" in loaded else None,
                       spec.t5_prefix, {"task": name, "dataset": spec.path, "config": spec.config_name})


class Seq2SeqCollator:
    """Indices -> input_ids, attention_mask (B, T) and labels (B, L) with padding set to -100."""

    def __init__(self, pairs: Pairs, tokenizer: Any, prefix: str, max_length: int, max_target_length: int) -> None:
        self.pairs, self.tokenizer, self.prefix = pairs, tokenizer, prefix
        self.max_length, self.max_target_length = max_length, max_target_length

    def sources(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        texts = [self.prefix + self.pairs.sources[i] for i in indices]
        return dict(self.tokenizer(texts, max_length=self.max_length, truncation=True, padding=True,
                                   return_tensors="pt"))

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        batch = {k: v for k, v in self.sources(indices).items() if k in ("input_ids", "attention_mask")}
        labels = self.tokenizer(text_target=[self.pairs.targets[i] for i in indices],
                                max_length=self.max_target_length, truncation=True, padding=True,
                                return_tensors="pt")
        ids = labels["input_ids"]  # (B, L)
        batch["labels"] = ids.masked_fill(labels["attention_mask"] == 0, IGNORE_INDEX)  # (B, L)
        batch["index"] = torch.tensor(list(indices), dtype=torch.long)
        return batch
