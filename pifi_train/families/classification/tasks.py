"""The paper's built-in tasks, as data: where each lives on the Hub and how it is split.

Each :class:`TaskSpec` row says which Hugging Face dataset to read, which columns
hold the text(s) and the label, which raw labels to keep (and their ids), and how
the train / validation / test splits are cut — exactly as the authors' code
(github.com/khyun8072/PiFi) does. :func:`assemble_task` applies a row to rows
already in memory (pure, testable offline); :func:`load_builtin_task` fetches the
rows with the optional ``datasets`` library.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from pifi_extract.errors import ConfigError, OfflineError

from .data import Examples, TaskData


@dataclass(frozen=True)
class Take:
    """Which rows of a Hub split make one of our splits.

    ``shuffle_fraction=(a, b)``: shuffle the split with the run's seed, keep rows
    ``[a·n, b·n)``. ``tail_size_of=S``: the last ``len(S)`` rows (``tail=True``) or
    every row before them (``tail=False``).
    """

    split: str
    shuffle_fraction: tuple[float, float] | None = None
    tail_size_of: str | None = None
    tail: bool = False


@dataclass(frozen=True)
class TaskSpec:
    """One built-in task of the paper."""

    name: str
    path: str
    config_name: str | None
    text_column: str
    text_pair_column: str | None
    label_column: str
    # raw label -> our id; rows whose label is not a key are dropped
    label_ids: Mapping[int, int]
    label_names: Sequence[str]
    train: Take
    validation: Take
    test: Take
    note: str = ""


_HOLDOUT = 0.2  # the authors' train_valid_split
_BINARY = {0: 0, 1: 1}
_NLI = {0: 0, 1: 1, 2: 2}
_NLI_NAMES = ("entailment", "neutral", "contradiction")

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("sst2", "SetFit/sst2", None, "text", None, "label", _BINARY, ("negative", "positive"),
                 Take("train"), Take("validation"), Take("test")),
        TaskSpec("imdb", "stanfordnlp/imdb", None, "text", None, "label", _BINARY, ("neg", "pos"),
                 Take("train", shuffle_fraction=(_HOLDOUT, 1.0)), Take("train", shuffle_fraction=(0.0, _HOLDOUT)),
                 Take("test"), note="train split 80/20 into train/validation"),
        TaskSpec("tweet_sentiment_binary", "cardiffnlp/tweet_eval", "sentiment", "text", None, "label",
                 {0: 0, 2: 1}, ("negative", "positive"), Take("train"), Take("validation"), Take("test"),
                 note="neutral dropped, positive -> 1"),
        TaskSpec("tweet_offensive", "cardiffnlp/tweet_eval", "offensive", "text", None, "label", _BINARY,
                 ("not-offensive", "offensive"), Take("train"), Take("validation"), Take("test")),
        TaskSpec("cola", "nyu-mll/glue", "cola", "sentence", None, "label", _BINARY,
                 ("unacceptable", "acceptable"), Take("train", shuffle_fraction=(_HOLDOUT, 1.0)),
                 Take("train", shuffle_fraction=(0.0, _HOLDOUT)), Take("validation"),
                 note="train split 80/20 into train/validation; test = GLUE validation"),
        TaskSpec("mnli", "nyu-mll/glue", "mnli", "premise", "hypothesis", "label", _NLI, _NLI_NAMES,
                 Take("train", tail_size_of="validation_mismatched", tail=False),
                 Take("train", tail_size_of="validation_mismatched", tail=True), Take("validation_mismatched"),
                 note="validation = last len(validation_mismatched) train rows; test = validation_mismatched"),
        TaskSpec("snli", "stanfordnlp/snli", None, "premise", "hypothesis", "label", _NLI, _NLI_NAMES,
                 Take("train"), Take("validation"), Take("test"), note="labels outside 0..2 dropped"),
    ]
}


def task_names() -> list[str]:
    """The built-in task names, sorted."""
    return sorted(TASKS)


def get_task(name: str) -> TaskSpec:
    """The row for ``name``; a ConfigError listing the known tasks otherwise."""
    spec = TASKS.get(name.lower())
    if spec is None:
        raise ConfigError(f"unknown task {name!r}", f"known tasks: {', '.join(task_names())}; "
                          "or pass --train-file/--validation-file/--test-file")
    return spec


def _rows(take: Take, raw: Mapping[str, Mapping[str, list]], label_column: str, seed: int) -> list[int]:
    """Row indices of ``raw[take.split]`` selected by ``take`` (labels not filtered yet)."""
    n = len(raw[take.split][label_column])
    indices = list(range(n))
    if take.shuffle_fraction is not None:
        random.Random(seed).shuffle(indices)
        start, stop = take.shuffle_fraction
        return indices[int(n * start):int(n * stop)]
    if take.tail_size_of is not None:
        size = len(raw[take.tail_size_of][label_column])
        return indices[n - size:] if take.tail else indices[:n - size]
    return indices


def _examples(spec: TaskSpec, take: Take, raw: Mapping[str, Mapping[str, list]], seed: int) -> Examples:
    table = raw[take.split]
    texts, pairs, labels = [], [], []
    for i in _rows(take, raw, spec.label_column, seed):
        raw_label = int(table[spec.label_column][i])
        if raw_label not in spec.label_ids:
            continue
        texts.append(str(table[spec.text_column][i]))
        if spec.text_pair_column:
            pairs.append(str(table[spec.text_pair_column][i]))
        labels.append(spec.label_ids[raw_label])
    return Examples(texts, pairs if spec.text_pair_column else None, labels)


def needed_splits(spec: TaskSpec) -> list[str]:
    """Hub split names a task reads."""
    names = {t.split for t in (spec.train, spec.validation, spec.test)}
    names |= {t.tail_size_of for t in (spec.train, spec.validation, spec.test) if t.tail_size_of}
    return sorted(names)


def assemble_task(spec: TaskSpec, raw: Mapping[str, Mapping[str, list]], seed: int) -> TaskData:
    """Cut ``raw`` (split -> column -> values) into our splits as the spec says. Pure."""
    missing = [s for s in needed_splits(spec) if s not in raw]
    if missing:
        raise ConfigError(f"dataset {spec.path} lacks split(s) {', '.join(missing)}")
    return TaskData(
        name=spec.name,
        label_names=list(spec.label_names),
        train=_examples(spec, spec.train, raw, seed),
        validation=_examples(spec, spec.validation, raw, seed),
        test=_examples(spec, spec.test, raw, seed),
        source={"task": spec.name, "dataset": spec.path, "config": spec.config_name, "note": spec.note},
    )


def load_builtin_task(name: str, seed: int, cache_dir: str | None = None) -> TaskData:
    """Download (or read from the ``datasets`` cache) a built-in task and split it as the paper does."""
    spec = get_task(name)
    try:
        import datasets  # optional extra: pifi[datasets]
    except ImportError as err:
        raise ConfigError(
            f"built-in task {spec.name!r} needs the optional 'datasets' library",
            "pip install 'pifi[datasets]', or pass local files with --train-file/--validation-file/--test-file",
        ) from err
    columns = [c for c in (spec.text_column, spec.text_pair_column, spec.label_column) if c]
    from huggingface_hub import constants

    try:
        loaded: Any = datasets.load_dataset(spec.path, spec.config_name, cache_dir=cache_dir)
    except Exception as err:  # datasets raises many types (DatasetNotFoundError, ConnectionError, ValueError...)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        if constants.HF_HUB_OFFLINE or isinstance(err, ConnectionError):
            raise OfflineError(f"dataset {spec.path} for task {spec.name!r} is not available offline: {first}",
                               "connect to the Hub once to cache it, or pass local files with --train-file") from err
        raise ConfigError(f"could not load dataset {spec.path} for task {spec.name!r}: {first}") from err
    raw = {split: {c: loaded[split][c] for c in columns} for split in needed_splits(spec) if split in loaded}
    return assemble_task(spec, raw, seed)
