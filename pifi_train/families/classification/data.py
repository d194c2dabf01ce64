"""Classification data: texts (or text pairs) with integer labels, from local files or the built-in tasks.

A task is three :class:`Examples` (train, validation, optional test) plus the label names (id ``i`` is
``label_names[i]``). Local files map their labels to ids from the training file (integers sort
numerically, names alphabetically); a file without validation gets a seeded split of train
(``--split-seed``). :func:`load_task` assembles a run's data: the task, --extra-test sets, cleaning,
--train-fraction (stratified) and the sample caps. Torch-free.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError

from ...splits import seeded_holdout
from ...tables import column, read_table


@dataclass
class Examples:
    """Texts (and optional second texts of a pair) with integer labels."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> "Examples":
        return Examples(
            [self.texts[i] for i in indices],
            [self.pairs[i] for i in indices] if self.pairs is not None else None,
            [self.labels[i] for i in indices],
        )


@dataclass
class TaskData:
    """Everything a run trains and evaluates on."""

    name: str
    label_names: list[str]
    train: Examples
    validation: Examples
    test: Examples | None
    source: dict[str, Any] = field(default_factory=dict)
    extra_tests: dict[str, Examples] = field(default_factory=dict)  # --extra-test name -> examples (run label ids)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


_INT = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def label_key(value: Any, path: Path, number: int) -> int | str:
    """A label as a class key: an int, or a stripped name. Empty or fractional labels do not parse."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
    else:
        text = str(value).strip()
        if _INT.match(text):
            return int(text)
        if text and not _NUMBER.match(text) and text.lower() not in ("nan", "none", "null"):
            return text
    raise ConfigError(
        f"label {value!r} in {path} row {number} does not parse as a class",
        "labels must be integers or names (a classification task, not regression)",
    )


def label_names_from(keys: Sequence[int | str]) -> list[str]:
    """Sorted class names: integers numerically, otherwise alphabetically."""
    unique = set(keys)
    if all(isinstance(k, int) for k in unique):
        return [str(k) for k in sorted(unique)]  # type: ignore[type-var]
    return sorted(str(k) for k in unique)


def _file_examples(
    path: Path, text_column: str, text_pair_column: str | None, label_column: str, label_ids: dict[str, int] | None
) -> tuple[Examples, list[str]]:
    rows = read_table(path)
    texts = [str(v) for v in column(rows, text_column, path)]
    pairs = [str(v) for v in column(rows, text_pair_column, path)] if text_pair_column else None
    keys = [label_key(v, path, i) for i, v in enumerate(column(rows, label_column, path), 1)]
    names = label_names_from(keys) if label_ids is None else list(label_ids)
    ids = label_ids or {name: i for i, name in enumerate(names)}
    labels = []
    for number, key in enumerate(keys, 1):
        if str(key) not in ids:
            raise ConfigError(f"label {key!r} in {path} row {number} never occurs in the training file",
                              f"known labels: {', '.join(ids)}")
        labels.append(ids[str(key)])
    return Examples(texts, pairs, labels), names


def load_local_task(
    train_file: Path,
    validation_file: Path | None,
    test_file: Path | None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    validation_fraction: float = 0.2,
    seed: int = 2023,
) -> TaskData:
    """Read local files; labels get ids from the training file; no validation file -> seeded split of train."""
    cols = (text_column, text_pair_column, label_column)
    train, names = _file_examples(Path(train_file), *cols, label_ids=None)
    if len(names) < 2:
        raise ConfigError(f"{train_file} holds one class only ({names[0]!r}): a classifier needs at least 2",
                          f"check the --label-column ({label_column!r}) or add examples of the other classes")
    ids = {name: i for i, name in enumerate(names)}
    if validation_file is not None:
        validation, _ = _file_examples(Path(validation_file), *cols, label_ids=ids)
    else:
        train, validation = seeded_holdout(train, validation_fraction, seed)
    test = _file_examples(Path(test_file), *cols, label_ids=ids)[0] if test_file is not None else None
    files = {"train": str(train_file), "validation": str(validation_file) if validation_file else None,
             "test": str(test_file) if test_file else None}
    return TaskData(Path(train_file).stem, names, train, validation, test,
                    source={"files": files, "text_column": text_column, "text_pair_column": text_pair_column,
                            "label_column": label_column, "validation_fraction": validation_fraction
                            if validation_file is None else None})

