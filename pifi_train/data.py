"""Training data: in-memory examples, local CSV/TSV/JSONL files, labels, batches.

A task is three :class:`Examples` (train, validation, optional test) plus the
label names (id ``i`` is ``label_names[i]``). Local files map their labels to ids
from the training file (integers sort numerically, names alphabetically); a file
without validation gets a seeded split of train. :class:`Collator` turns a list of
example indices into padded tensors with the small model's tokenizer.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from pifi_extract.errors import ConfigError, SourceNotFoundError


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


def seeded_split(examples: Examples, fraction: float, seed: int) -> tuple[Examples, Examples]:
    """(rest, held_out): shuffle with ``seed`` and hold out the first ``fraction`` (the authors' 80/20 rule)."""
    indices = list(range(len(examples)))
    random.Random(seed).shuffle(indices)
    cut = int(len(indices) * fraction)
    return examples.subset(indices[cut:]), examples.subset(indices[:cut])


# ---- local files -------------------------------------------------------------------------------

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV (header line), TSV (header line) or JSONL (one object a line) file."""
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"data file not found: {path}")
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"unknown data file type {path.suffix!r}: {path}", "use .csv, .tsv or .jsonl")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path} is not UTF-8 text (byte {err.start}, line {line})",
                          "re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)") from None
    if kind == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{path} line {number} is not JSON: {err.msg}") from err
            if not isinstance(row, dict):
                raise ConfigError(f"{path} line {number} is not a JSON object")
            rows.append(row)
    else:
        # newline="" semantics: a quoted field may hold line breaks
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="," if kind == "csv" else "\t")
        try:
            rows = list(reader)
        except csv.Error as err:
            raise ConfigError(f"{path} line {reader.line_num}: cannot read it as {kind.upper()} ({err})",
                              "fix that line; for texts longer than 128 KB use a .jsonl file") from None
    if not rows:
        raise ConfigError(f"data file has no rows: {path}")
    return rows


def require_columns(rows: list[dict[str, Any]], names: Sequence[str], path: Path) -> None:
    """Refuse a table whose header lacks one of ``names`` (listing the columns it has)."""
    for name in names:
        if name not in rows[0]:
            raise ConfigError(f"{path} has no column {name!r}", f"its columns: {', '.join(map(str, rows[0]))}")


def _column(rows: list[dict[str, Any]], name: str, path: Path) -> list[Any]:
    require_columns(rows, [name], path)
    values = []
    for number, row in enumerate(rows, 1):
        if row.get(name) is None:
            raise ConfigError(f"{path} row {number} has no value in column {name!r}")
        values.append(row[name])
    return values


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
    texts = [str(v) for v in _column(rows, text_column, path)]
    pairs = [str(v) for v in _column(rows, text_pair_column, path)] if text_pair_column else None
    keys = [label_key(v, path, i) for i, v in enumerate(_column(rows, label_column, path), 1)]
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
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {validation_fraction}")
    cols = (text_column, text_pair_column, label_column)
    train, names = _file_examples(Path(train_file), *cols, label_ids=None)
    if len(names) < 2:
        raise ConfigError(f"{train_file} holds one class only ({names[0]!r}): a classifier needs at least 2",
                          f"check the --label-column ({label_column!r}) or add examples of the other classes")
    ids = {name: i for i, name in enumerate(names)}
    if validation_file is not None:
        validation, _ = _file_examples(Path(validation_file), *cols, label_ids=ids)
    else:
        train, validation = seeded_split(train, validation_fraction, seed)
        if not len(validation) or not len(train):
            raise ConfigError(f"{train_file} has too few rows to hold out a validation split")
    test = _file_examples(Path(test_file), *cols, label_ids=ids)[0] if test_file is not None else None
    files = {"train": str(train_file), "validation": str(validation_file) if validation_file else None,
             "test": str(test_file) if test_file else None}
    return TaskData(Path(train_file).stem, names, train, validation, test,
                    source={"files": files, "text_column": text_column, "text_pair_column": text_pair_column,
                            "label_column": label_column, "validation_fraction": validation_fraction
                            if validation_file is None else None})


# ---- batches -----------------------------------------------------------------------------------


class Collator:
    """Turns example indices into a padded batch: tokenizer outputs the SLM accepts, plus ``labels``."""

    def __init__(self, examples: Examples, tokenizer: Any, max_length: int, input_names: Sequence[str]) -> None:
        self.examples = examples
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.input_names = set(input_names)

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        texts = [self.examples.texts[i] for i in indices]
        pairs = [self.examples.pairs[i] for i in indices] if self.examples.pairs is not None else None
        encoded = self.tokenizer(texts, pairs, truncation=True, max_length=self.max_length, padding=True,
                                 return_tensors="pt")
        batch = {k: v for k, v in encoded.items() if k in self.input_names}
        batch["labels"] = torch.tensor([self.examples.labels[i] for i in indices], dtype=torch.long)  # (B,)
        batch["index"] = torch.tensor(list(indices), dtype=torch.long)  # (B,)
        return batch
