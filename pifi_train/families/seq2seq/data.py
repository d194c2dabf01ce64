"""Sequence-to-sequence data: (source, target) pairs from local files or the built-in tasks, and batches.

Built-in tasks (``pifi[datasets]``): ``multi30k`` (bentrevett/multi30k, English -> German) and
``cnn_dailymail`` (abisee/cnn_dailymail 3.0.0, article -> highlights). A T5 SLM gets the task's
prefix ("translate English to German: ", "summarize: "); other SLMs none, unless --source-prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError, OfflineError

from ...splits import seeded_holdout
from ...tables import read_table



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
    extra_tests: dict[str, Pairs] = field(default_factory=dict)  # --extra-test name -> pairs


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


def pairs_from_rows(rows: list[dict[str, Any]], source: str, target: str, where: str) -> Pairs:
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
    pairs = pairs_from_rows(read_table(train), source, target, str(train))
    if validation is not None:
        held = pairs_from_rows(read_table(validation), source, target, str(validation))
    else:
        pairs, held = seeded_holdout(pairs, fraction, seed)
    tested = pairs_from_rows(read_table(test), source, target, str(test)) if test is not None else None
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


def load_extra_test(reference: str, source: str, target: str) -> Pairs:
    """One --extra-test set: a local file with the run's columns, or a built-in task's test split."""
    if reference.lower() in TASKS and not Path(reference).is_file():
        test = load_builtin_pairs(reference.lower()).test
        if test is None:
            raise ConfigError(f"--extra-test {reference}: the task has no test split")
        return test
    return pairs_from_rows(read_table(Path(reference)), source, target, reference)
